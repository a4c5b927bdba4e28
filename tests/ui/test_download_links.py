"""The merged file's download link honours ``server.baseUrlPath`` (a server behind a team
proxy at ``/ckpt/``): the Download view renders the link under the base path, and the
server's route is registered at that same path."""
from __future__ import annotations

import re

import pytest
from starlette.routing import Route
from streamlit import config

from ckptlab.ui import files

from .test_app import new_app, no_failure, view


@pytest.fixture
def base_url_path():
    """Set ``server.baseUrlPath`` for one test, restored after it."""
    before = config.get_option("server.baseUrlPath")
    yield lambda value: config.set_option("server.baseUrlPath", value)
    config.set_option("server.baseUrlPath", before)


def rendered_link(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(files, "ROUTE_ACTIVE", True)        # as in a served process: a link, not a button
    at = view(new_app(), "Download")                   # the demo pair builds as it is
    at.button(key="build_merged").click().run()
    no_failure(at)
    links = [m.value for m in at.markdown if "ckptlab-download" in m.value]
    assert len(links) == 1, [m.value for m in at.markdown]
    return re.search(r'href="([^"]+)"', links[0]).group(1)


@pytest.mark.parametrize(("base", "prefix"), [("", "/ckptlab/download/"), ("ckpt", "/ckpt/ckptlab/download/"),
                                              ("/team/ckpt/", "/team/ckpt/ckptlab/download/")])
def test_the_rendered_link_and_the_route_are_under_the_base_path(base, prefix, base_url_path, monkeypatch) -> None:
    base_url_path(base)
    href = rendered_link(monkeypatch)
    assert href.startswith(prefix) and "/" not in href[len(prefix):], href
    served = files.lookup(href.rsplit("/", 1)[-1])
    assert served is not None and served.path.is_file()
    route = Route(files.route_path(), lambda request: None)   # the path the server registers its route at
    assert route.path == prefix + "{token}"
    assert route.matches({"type": "http", "path": href, "method": "GET"})[0].name == "FULL"
