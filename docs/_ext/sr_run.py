"""``.. sr-run::``: run a few lines of Python when the docs build and show them with what
they printed -- for output that follows the code it describes (a kernel trace table),
which a doctest would have to copy by hand and keep in step.

    .. sr-run::

       steps = sr.viz.trace(...)
       print(steps)

The code runs in one namespace per page (``np`` and ``sr`` imported); an exception fails
the build.
"""

import contextlib
import io
import traceback

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class SrRun(SphinxDirective):
    has_content = True

    def run(self):
        code = "\n".join(self.content)
        spaces = self.env.temp_data.setdefault("sr_run_namespace", {})
        namespace = spaces.setdefault(self.env.docname, {})
        if not namespace:
            exec("import numpy as np\nimport sparse_ref as sr", namespace)  # noqa: S102 - the directive's purpose
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"<{self.env.docname} sr-run>", "exec"), namespace)  # noqa: S102
        except Exception:  # noqa: BLE001 - any failure is reported, with its traceback
            raise self.error(f"sr-run: the code raised\n{traceback.format_exc()}") from None
        source = nodes.literal_block(code, code, language="python")
        printed = out.getvalue().rstrip("\n")
        result = [source]
        if printed:
            result.append(nodes.literal_block(printed, printed, language="text"))
        return result


def setup(app):
    app.add_directive("sr-run", SrRun)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
