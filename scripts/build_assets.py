"""Copy the NHS.UK design system from node_modules into static/nhsuk/, and wavesurfer.js (the waveform on the
redaction page) into static/vendor/wavesurfer/, so both are served from our own origin.

The design system's CSS asks for the Frutiger web font from assets.nhs.uk. The portal's CSP allows fonts
from our own origin only, and that font is licensed for NHS.UK, so the @font-face rules are removed here;
browsers use the design system's fallback fonts (Arial) instead, and no page asks another origin for anything.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "node_modules" / "nhsuk-frontend"
TARGET = ROOT / "static" / "nhsuk"
WAVESURFER = ROOT / "node_modules" / "wavesurfer.js"
WAVESURFER_TARGET = ROOT / "static" / "vendor" / "wavesurfer"
# The ES module builds the redaction page imports: the player and its regions plugin (each self-contained).
WAVESURFER_FILES = {"wavesurfer.esm.js": "dist/wavesurfer.esm.js", "regions.esm.js": "dist/plugins/regions.esm.js"}
FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}")
FOREIGN_URL = re.compile(r"url\(\s*['\"]?(?:https?:)?//[^)]*\)")
# The source maps are not copied, so their references would only produce 404s in developer tools.
SOURCE_MAP = re.compile(r"/[*/]# sourceMappingURL=\S+( \*/)?")


def copy_wavesurfer() -> str:
    """Copy wavesurfer.js's ES modules and its licence; they import nothing from any other address."""
    package = json.loads((WAVESURFER / "package.json").read_text())
    if WAVESURFER_TARGET.exists():
        shutil.rmtree(WAVESURFER_TARGET)
    WAVESURFER_TARGET.mkdir(parents=True)
    for name, source in WAVESURFER_FILES.items():
        code = SOURCE_MAP.sub("", (WAVESURFER / source).read_text(encoding="utf-8"))
        (WAVESURFER_TARGET / name).write_text(code, encoding="utf-8")
    shutil.copyfile(WAVESURFER / "LICENSE", WAVESURFER_TARGET / "LICENSE")
    (WAVESURFER_TARGET / "VERSION").write_text(package["version"] + "\n")
    return package["version"]


def main() -> int:
    package = json.loads((SOURCE / "package.json").read_text())
    dist = SOURCE / "dist" / "nhsuk"
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    css = (dist / "nhsuk-frontend.min.css").read_text(encoding="utf-8")
    css, removed = FONT_FACE.subn("", css)
    foreign = sorted(set(FOREIGN_URL.findall(css)))
    if foreign:
        print(f"nhsuk-frontend CSS still refers to other origins: {foreign}", file=sys.stderr)
        return 1
    css = SOURCE_MAP.sub("", css)
    (TARGET / "nhsuk-frontend.min.css").write_text(css, encoding="utf-8")
    js = SOURCE_MAP.sub("", (dist / "nhsuk-frontend.min.js").read_text(encoding="utf-8"))
    (TARGET / "nhsuk-frontend.min.js").write_text(js, encoding="utf-8")
    shutil.copytree(dist / "assets", TARGET / "assets")
    (TARGET / "VERSION").write_text(package["version"] + "\n")
    print(
        f"nhsuk-frontend {package['version']} copied to {TARGET.relative_to(ROOT)} ({removed} web-font rules removed)"
    )
    version = copy_wavesurfer()
    print(f"wavesurfer.js {version} copied to {WAVESURFER_TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
