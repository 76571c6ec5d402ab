"""Shared fixtures: a headless Chromium (Debian's chromium and chromium-driver, which `make chromium` installs when no
browser is there; a Chrome and chromedriver already installed, as on GitHub's Ubuntu runners, serve as well)."""
import os, shutil
import pytest

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')

def find_browser():
    """(browser, chromedriver) paths, or Nones: Debian's chromium first, then Chrome; $CHROMEWEBDRIVER is GitHub's
    driver folder."""
    b = next((shutil.which(n) for n in BROWSERS if shutil.which(n)), None)
    d = shutil.which('chromedriver') or shutil.which('chromedriver', path=os.environ.get('CHROMEWEBDRIVER', '')) or None
    return b, d

@pytest.fixture(scope='session')
def browser():
    binary, driver = find_browser()
    if not binary or not driver:
        pytest.fail(f"headless Chromium is needed for the docs check (looked for {', '.join(BROWSERS)} and "
                    "chromedriver): `make chromium` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-dev-shm-usage',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--window-size=1280,2000'):
        o.add_argument(a)
    o.binary_location = binary
    d = webdriver.Chrome(service=Service(driver), options=o)
    yield d
    d.quit()


@pytest.fixture(scope='module')
def one_thread():
    "One torch thread for a test module (the CI's 2 cores are shared by two test workers), restored after it."
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
