"""Fail if the built site loads any script or stylesheet from the network.

    python docs/check_offline.py docs/_build/html

The site must work with no network (math included: MathJax is served from _static).
Links to other sites are fine; only what a page *loads* is checked.
"""

import re
import sys
from pathlib import Path

LOADS = re.compile(
    r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["'](?P<url>(https?:)?//[^"']+)["']""",
    re.IGNORECASE,
)


def main(root: str) -> int:
    pages = sorted(Path(root).rglob("*.html"))
    problems = []
    for page in pages:
        for match in LOADS.finditer(page.read_text(errors="replace")):
            tag = match.group(1).lower()
            if tag == "link" and "stylesheet" not in match.group(0) and "preload" not in match.group(0):
                continue  # <link rel="canonical" ...> and the like load nothing
            problems.append(f"{page}: loads {match.group('url')}")
    if not pages:
        problems.append(f"no HTML pages under {root}")
    for p in problems:
        print(p)
    print(f"checked {len(pages)} pages: {'OK, nothing loaded from the network' if not problems else 'FAILED'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html"))
