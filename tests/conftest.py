"Shared fixtures: a headless Chromium (Debian's chromium and chromium-driver; `make chromium` installs them)."
import shutil
import pytest

@pytest.fixture(scope='session')
def browser():
    if not shutil.which('chromium') or not shutil.which('chromedriver'):
        pytest.fail("headless Chromium is needed for the docs check: `make chromium` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-dev-shm-usage',
              '--disable-background-networking', '--disable-component-update', '--disable-sync', '--window-size=1280,2000'):
        o.add_argument(a)
    o.binary_location = shutil.which('chromium')
    d = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=o)
    yield d
    d.quit()
