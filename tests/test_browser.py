"""The pages people look at, in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, which .ci/run installs) driven by Selenium, never a downloaded browser.

- /setup against `agegate edge run` on a video: the image updates, and the verdict reads right for a
  good face and for one too small.
- The fleet report's HTML: every chart loads.
Set AGEGATE_SCREENSHOTS=DIR to keep screenshots (the README's come from here). Needs no ../shared.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agegate.edge.setup_view import SETUP_FACE_PX

from .conftest import portrait_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("headless Chromium is missing: apt-get install chromium chromium-driver (.ci/run does it)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,1300"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def shoot(driver, name: str) -> None:
    folder = os.environ.get("AGEGATE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def start_box(tmp: Path, video: Path, token: str) -> tuple[subprocess.Popen, str]:
    """`agegate edge run` on the video with the full-range detector (small faces are found, so the
    set-up view can say they are too small); returns the process and its base URL."""
    from agegate.edge.default_model import default_model_path

    (tmp / "box.toml").write_text(f'[source]\nuri = "{video}"\n[model]\npath = "{default_model_path()}"\n'
                                  f'[detector]\nname = "blazeface-full"\nmin_face = 16\n[api]\nport = 0\n'
                                  f'token = "{token}"\n[events]\npath = "{tmp / "ev.sqlite"}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "agegate.edge", "edge", "run", "--config", str(tmp / "box.toml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
    deadline, said = time.time() + 60, []
    while time.time() < deadline:
        line = proc.stderr.readline()
        said.append(line)
        m = re.match(r"(http://[\d.]+:\d+)", line)
        if m:
            return proc, m[1]
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"edge run did not start its HTTP server: {''.join(said)[-2000:]}")


def stop_box(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(driver, check, timeout: float = 30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check(driver)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out; page says: {driver.find_element('id', 'verdict').text!r}, "
                         f"fix {driver.find_element('id', 'fix').text!r}")


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


@pytest.mark.parametrize("side,verdict,fix", [(360, "good", "nothing to do"), (120, "face too small", "move the camera closer")])
def test_setup_page_shows_live_image_and_the_right_verdict(browser, tmp_path, side, verdict, fix):
    video = portrait_video(tmp_path / "till.mp4", side, frames=1200)
    proc, base = start_box(tmp_path, video, "t0ken")
    try:
        browser.get(f"{base}/setup?token=t0ken")
        wait_for(browser, lambda d: text(d, "verdict") == verdict)
        assert fix in text(browser, "fix")
        frames_then = int(text(browser, "frames"))
        src_then = browser.find_element("id", "frame").get_attribute("src")
        # the image is live: a newer frame arrives, the <img> loads it (a real JPEG, not a broken icon)
        wait_for(browser, lambda d: int(text(d, "frames")) > frames_then
                 and d.find_element("id", "frame").get_attribute("src") != src_then)
        wait_for(browser, lambda d: d.execute_script(
            "const i = document.getElementById('frame'); return i.complete && i.naturalWidth === 640;"))
        px = float(text(browser, "face_px").split()[0])
        assert (px >= SETUP_FACE_PX) == (verdict == "good"), px
        eyes = text(browser, "eyes")  # the box's own eye check, read on this face: open eyes, over the line
        assert eyes.endswith("(needs 0.3)") and float(eyes.split()[0]) >= 0.3, eyes
        facing = text(browser, "facing")  # a frontal portrait: turned well under the set-up line
        assert facing.startswith("yes (turned ") and facing.endswith(", up to 0.2)"), facing
        assert float(facing.split()[2].rstrip(",")) < 0.1, facing
        roll = text(browser, "roll")  # upright: the eye line level, well inside the line for a camera on its side
        assert roll.startswith("leans ") and roll.endswith("(up to 30)") and float(roll.split()[1]) < 15, roll
        assert "never written to disk" in browser.page_source
        shoot(browser, f"setup-{verdict.replace(' ', '-')}.png")
        # without the token: refused, page and image alike
        browser.get(f"{base}/setup/status?token=wrong")
        assert "missing or wrong bearer token" in browser.page_source
    finally:
        stop_box(proc)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert leftovers == [], f"an image was written to disk: {leftovers}"


def test_setup_page_says_when_the_picture_lies_on_its_side(browser, tmp_path):
    """The portrait turned a quarter in the frame (a camera mounted on its side): the page names the fix
    (source.rotate), keeps saying so as frames go by, and shows the eye line leaning past its line."""
    video = portrait_video(tmp_path / "side.mp4", 360, frames=1200, turn=90)
    proc, base = start_box(tmp_path, video, "t0ken")
    try:
        browser.get(f"{base}/setup?token=t0ken")
        wait_for(browser, lambda d: text(d, "verdict") == "picture on its side")
        assert "source.rotate" in text(browser, "fix")
        # a second later the page still says so: it reads the last frames' median lean, not one loose frame's
        wait_for(browser, lambda d: int(text(d, "frames")) > 30)
        assert text(browser, "verdict") == "picture on its side"
        roll = text(browser, "roll")
        assert roll.startswith("leans ") and float(roll.split()[1]) > 30, roll
        shoot(browser, "setup-picture-on-its-side.png")
    finally:
        stop_box(proc)


def test_fleet_report_charts_load_in_a_browser(browser, tmp_path):
    from agegate.benchmarks.fleet_bench import generate_tree
    from agegate.edge.fleet import build_report
    from agegate.edge.fleet_html import CHARTS, write_report

    generate_tree(tmp_path / "tree", boxes=24, days=21)
    index = write_report(build_report([str(tmp_path / "tree")]), tmp_path / "report")
    browser.get(index.as_uri())
    wait_for(browser, lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 300);"))
    loaded = browser.execute_script("return [...document.images].map(i => i.getAttribute('src'));")
    assert sorted(loaded) == sorted(CHARTS)
    scope = text(browser, "scope")
    assert "24 boxes" in scope and "21 days" in scope
    shoot(browser, "fleet-report.png")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["uncertain_jumps"], "the planted camera problem is not listed"
