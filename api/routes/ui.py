"""The web UI (/ui) and the API's own docs (/docs), served with assets that ship in the package:
no CDN, so both work without internet. The pages hold no data: they read /v1 with the team's
key from the browser's session storage, so a team sees exactly what its key sees in the API."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from tuner.figures import COLORS

STATIC = Path(__file__).resolve().parents[1] / "static"
PAGES = {"jobs": "Jobs", "job": "Job", "task": "Which optimizer?", "tasks": "Tasks"}

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=8)
def _page(name: str) -> str:
    shell = (STATIC / "ui" / "shell.html").read_text()
    body = (STATIC / "ui" / f"{name}.html").read_text()
    return shell.replace("{title}", PAGES[name]).replace("{page}", name).replace("{body}", body)


@router.get("/ui")
def jobs_page() -> HTMLResponse:
    return HTMLResponse(_page("jobs"))


@router.get("/ui/")
def ui_slash() -> RedirectResponse:
    return RedirectResponse("/ui")


@router.get("/ui/jobs/{job_id}")
def job_page(job_id: Annotated[str, PathParam(max_length=64)]) -> HTMLResponse:
    return HTMLResponse(_page("job"))


@router.get("/ui/tasks")
def tasks_page() -> HTMLResponse:
    return HTMLResponse(_page("tasks"))


@router.get("/ui/tasks/{task_id}")
def task_page(task_id: int) -> HTMLResponse:
    return HTMLResponse(_page("task"))


@router.get("/ui/colors.json")
def colors() -> JSONResponse:
    """Each family's colour, the same as in `tuner plot`."""
    return JSONResponse(COLORS)


@router.get("/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="Optimizer tuning service: API",
        swagger_js_url="/ui/static/vendor/swagger-ui-bundle.js",
        swagger_css_url="/ui/static/vendor/swagger-ui.css",
        swagger_favicon_url="/ui/static/vendor/favicon-32x32.png")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
