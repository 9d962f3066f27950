"""Two directives for the algorithm pages, so that a page leads with the algorithm and
keeps the contract for its end:

``.. kernel-simple:: sparse_ref/reference/spmm.py spmm``
    the "Simple version" section of the kernel's contract docstring (the plain loop);

``.. kernel-body:: sparse_ref/reference/spmm.py spmm``
    the kernel's source without its docstring: the signature and the few lines of the
    algorithm.

Paths are relative to the repository root. Both read the file (never import it), with
``ast``; a function or section that is not there fails the build.
"""

import ast
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]


def _function(directive):
    path, name = directive.arguments
    source = (ROOT / path).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            directive.env.note_dependency(str(ROOT / path))
            return source.splitlines(), node
    raise directive.error(f"{path} has no function {name!r}")


class KernelBody(SphinxDirective):
    required_arguments = 2

    def run(self):
        lines, node = _function(self)
        body = node.body
        first = body[1] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body[0]
        signature = lines[node.lineno - 1: body[0].lineno - 1]
        code = "\n".join(signature + lines[first.lineno - 1: node.end_lineno])
        return [nodes.literal_block(code, code, language="python")]


class KernelSimple(SphinxDirective):
    required_arguments = 2

    def run(self):
        _, node = _function(self)
        doc = (ast.get_docstring(node) or "").splitlines()
        try:
            start = next(k for k in range(len(doc) - 1) if doc[k] == "Simple version" and set(doc[k + 1]) == {"-"})
        except StopIteration:
            raise self.error(f"{self.arguments[1]} has no 'Simple version' section") from None
        end = next((k for k in range(start + 2, len(doc) - 1) if doc[k] and set(doc[k + 1]) == {"-"}
                    and len(doc[k + 1]) == len(doc[k])), len(doc))
        container = nodes.container()
        self.state.nested_parse(StringList(doc[start + 2:end]), self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive("kernel-body", KernelBody)
    app.add_directive("kernel-simple", KernelSimple)
    return {"parallel_read_safe": True}
