#!/usr/bin/env bash
# Opens RUN_DIR/report.html in headless Chromium, at a phone's width (390 px) and a laptop's
# (1280 px), and fails with a message naming what is wrong unless:
#   - every <img> has loaded (complete, naturalWidth > 0): no figure is broken; and there is
#     one for each figure the folder holds (val_acc, val_loss, augmentations, embedding,
#     label_efficiency .png): none is left out;
#   - no request left the file: the browser's network log (Chrome's performance log) and the
#     page's resource timing hold nothing but the file itself and data: URIs;
#   - the console holds no error (a blocked request, say, by the page's Content-Security-Policy);
#   - the page is no wider than the window at either width (tables and code scroll inside
#     their own boxes).
# With SCREENSHOT.png it saves the whole page at each width, as SCREENSHOT-phone.png and
# SCREENSHOT-laptop.png (the stem of the name given, then -phone / -laptop).
#
# Usage: scripts/check-report-html.sh RUN_DIR [SCREENSHOT.png]
# Needs Debian's chromium and chromium-driver (installed with apt-get when missing, which needs
# root) and Python's selenium, in .venv-report (made here on first use, from PyPI).
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 RUN_DIR [SCREENSHOT.png]" >&2
  exit 2
fi
page=$(realpath "$1")/report.html
shot=${2:+$(realpath -m "$2")}
[ -f "$page" ] || { echo "check-report-html: no report.html in $1" >&2; exit 1; }
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "[check-report-html] installing Debian's chromium and chromium-driver" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! .venv-report/bin/python -c "import selenium" 2>/dev/null; then
  echo "[check-report-html] creating .venv-report with selenium 4.51.0" >&2
  "${PYTHON:-python3}" -m venv .venv-report
  .venv-report/bin/python -m pip install --quiet --disable-pip-version-check selenium==4.51.0
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# Selenium is given both binaries, so it never looks for a driver of its own.
SE_AVOID_STATS=true .venv-report/bin/python - "$page" "$profile" "${shot:-}" <<'PY'
import base64, json, pathlib, shutil, sys
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

page, profile, shot = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
url = page.as_uri()
opts = webdriver.ChromeOptions()
opts.binary_location = shutil.which("chromium")
for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900"]:
    opts.add_argument(flag)
opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
driver = webdriver.Chrome(options=opts, service=Service(executable_path=shutil.which("chromedriver")))
problems = []
# The figures a report shows when its folder has them.
FIGURES = ["val_acc.png", "val_loss.png", "augmentations.png", "embedding.png",
           "label_efficiency.png"]
try:
    driver.execute_cdp_cmd("Network.enable", {})
    for name, width in [("phone", 390), ("laptop", 1280)]:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 844 if width < 600 else 900,
            "deviceScaleFactor": 1, "mobile": width < 600})
        # What the browser did before (its start page) is not the report's doing.
        driver.get_log("performance")
        driver.get_log("browser")
        driver.get(url)
        state = driver.execute_script("""
            const imgs = [...document.images];
            return {
              images: imgs.map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                      src: i.currentSrc.slice(0, 40)})),
              resources: performance.getEntriesByType('resource').map(r => r.name),
              pageWidth: document.documentElement.scrollWidth,
              viewWidth: document.documentElement.clientWidth,
              height: Math.ceil(document.documentElement.scrollHeight),
            };""")
        # Every figure the folder holds is on the page (none left out, none shown as a note).
        figures = [f for f in FIGURES if (page.parent / f).is_file()]
        if len(state["images"]) != len(figures):
            problems.append(f"{name}: {len(state['images'])} <img> for the folder's "
                            f"{len(figures)} figures ({', '.join(figures)})")
        for img in state["images"]:
            if not (img["complete"] and img["width"] > 0):
                problems.append(f"{name}: image '{img['alt']}' did not load (src {img['src']}...)")
            if not img["src"].startswith("data:"):
                problems.append(f"{name}: image '{img['alt']}' is not a data: URI ({img['src']}...)")
        for r in state["resources"]:
            if not r.startswith("data:"):
                problems.append(f"{name}: the page fetched {r} (resource timing)")
        if state["pageWidth"] > state["viewWidth"]:
            problems.append(f"{name}: the page is {state['pageWidth']} px wide in a "
                            f"{state['viewWidth']} px window (it scrolls sideways)")
        requests = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                requests.append(msg["params"]["request"]["url"])
            elif msg["method"] in ("Network.webSocketCreated", "Network.webTransportCreated"):
                requests.append(msg["params"]["url"])
        outside = [r for r in requests if r != url and not r.startswith("data:")]
        problems += [f"{name}: a request left the file: {r}" for r in outside]
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        problems += [f"{name}: console error: {e}" for e in errors]
        loaded = sum(1 for i in state["images"] if i["complete"] and i["width"] > 0)
        print(f"{name} ({width} px): {loaded} of {len(state['images'])} images loaded "
              f"({', '.join(i['alt'] for i in state['images'])}); {len(requests)} requests "
              f"({len(outside)} outside the file); page {state['pageWidth']} x {state['height']} px")
        if shot:
            out = pathlib.Path(shot)
            out = out.with_name(f"{out.stem}-{name}.png")
            data = driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": state["viewWidth"], "height": state["height"],
                         "scale": 1}})["data"]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(base64.b64decode(data))
            print(f"{name}: screenshot {out}")
finally:
    driver.quit()
if problems:
    print("check-report-html: FAILED for " + str(page), file=sys.stderr)
    for p in problems:
        print("  - " + p, file=sys.stderr)
    sys.exit(1)
print(f"check-report-html: ok: {page}")
PY
