"""The application factory: the one composition root.

It binds the extensions, installs security, logging and error handling, and registers the `portal` and
`admin` blueprints. It is the only module in `core` allowed to import them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from flask import Flask, has_request_context, request, send_from_directory
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix

from core.auth import register_auth
from core.config import INSTANCE_PATH, PROJECT_ROOT, load_config
from core.errors import register_error_handlers
from core.extensions import csrf, db, limiter, migrate
from core.jinja import configure_jinja
from core.log import configure_logging, logger
from core.security import register_security
from core.services.content import PAGE_STATE_ENGINE, practice_values
from core.services.settings import last_known_settings, practice_settings
from core.upload_spool import PortalRequest

STATIC_FOLDER = PROJECT_ROOT / "static"
NHSUK_ASSETS = STATIC_FOLDER / "nhsuk" / "assets"


def forget_inherited_connections(app: Flask) -> None:
    """In a process forked from one that loaded `app` (gunicorn's workers: deploy/gunicorn.conf.py), let go of
    any pooled database connection the parent held, without closing it: a connection's socket must never be
    used by two processes. The portal opens none while it loads, so normally there is nothing to let go of."""
    with app.app_context():
        engines = [*db.engines.values(), app.extensions.get(PAGE_STATE_ENGINE)]
    for engine in engines:
        if engine is not None:
            engine.dispose(close=False)


def create_app(env_name: str | None = None, overrides: dict | None = None) -> Flask:
    """Build a configured application. `env_name` overrides `PORTAL_ENV`; `overrides` replace settings."""
    if (env_name or os.environ.get("PORTAL_ENV")) == "development":
        _load_dotenv()
    config_class, values = load_config(env_name, overrides)

    app = Flask(
        "core",
        instance_path=str(INSTANCE_PATH),
        static_folder=str(STATIC_FOLDER),
        static_url_path="/static",
        template_folder=None,
    )
    app.request_class = PortalRequest  # uploads never wait on disk as plain bytes
    app.config.from_object(config_class)
    app.config.update(values)
    if not app.config["RELEASE_ID"]:
        app.config["RELEASE_ID"] = derive_release_id(app.config)

    configure_jinja(app)
    configure_logging(app)
    register_extensions(app)
    register_security(app)
    register_auth(app)
    register_error_handlers(app)
    register_template_context(app)
    register_assets(app)
    register_blueprints(app)
    register_cli_commands(app)

    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    return app


def derive_release_id(config) -> str:
    """A short hash of everything besides the content that shapes a public page: templates, our static files,
    the design system's version and the practice details. Any change gives new ETags, so no browser or proxy
    keeps a page with an old layout or old practice details."""
    digest = hashlib.sha256()
    for folder in (PROJECT_ROOT / "templates", STATIC_FOLDER / "css", STATIC_FOLDER / "js"):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    version_file = STATIC_FOLDER / "nhsuk" / "VERSION"
    digest.update(version_file.read_bytes() if version_file.exists() else b"no-assets")
    for name in ("PRACTICE_NAME", "PRACTICE_ADDRESS", "PRACTICE_PHONE", "PRACTICE_EMAIL", "SERVICE_NAME"):
        digest.update(f"{name}={config[name]}\0".encode())
    return digest.hexdigest()[:12]


def _load_dotenv() -> None:
    """Read a `.env` file from the project root, if there is one. Real environment variables win.

    Only in development: tests and production must not pick up a developer's local file.
    """
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env", override=False)


def register_extensions(app: Flask) -> None:
    if (
        app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
        and ":memory:" not in app.config["SQLALCHEMY_DATABASE_URI"]
    ):
        INSTANCE_PATH.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    app.teardown_appcontext(_close_the_session)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)


def _close_the_session(_exc: BaseException | None) -> None:
    """Close the request's database session before Flask-SQLAlchemy's own teardown does (teardowns run in the
    reverse order of registration). Closing rolls back on the connection; when the database server has just
    closed that connection (a restart), the rollback fails, and raised here it would turn the page already
    made (or the 503 page) into a bare 500. The connection is thrown away instead; the pool opens a new one."""
    try:
        db.session.remove()
    except SQLAlchemyError:
        logger.warning("database connection lost at the end of a request: discarded")
        with contextlib.suppress(SQLAlchemyError):
            db.session().invalidate()
        db.session.registry.clear()


def register_template_context(app: Flask) -> None:
    @app.context_processor
    def practice_context() -> dict:
        try:
            settings = practice_settings()
        except SQLAlchemyError:
            # The database cannot answer (an error page is being drawn, say): show the details last read, and
            # leave the session usable for the rest of the request.
            db.session.rollback()
            settings = last_known_settings()
            if has_request_context():  # a page drawn with these must not be kept (portal.public.RenderedPages)
                request.environ["portal.practice_settings_stale"] = True
        values = practice_values(settings)
        return {
            "practice_settings": settings,
            "practice": {
                "name": values["practice_name"],
                "address": values["practice_address"],
                "phone": values["practice_phone"],
                "phone_tel": values["practice_phone_tel"],
                "email": values["practice_email"],
            },
            "service_name": app.config["SERVICE_NAME"],
        }


def register_assets(app: Flask) -> None:
    """Serve the NHS.UK design system's images and manifest at /assets, where its CSS expects them.

    Every `url_for('static', ...)` carries `?v=<release>`, so a proxy may cache those addresses for a year as
    immutable (deploy/nginx does): a new release has new addresses.
    """

    @app.url_defaults
    def version_static_urls(endpoint: str, values: dict) -> None:
        if endpoint == "static":
            values.setdefault("v", app.config["RELEASE_ID"])

    @app.route("/assets/<path:filename>", endpoint="nhsuk_assets")
    def nhsuk_assets(filename: str):
        return send_from_directory(NHSUK_ASSETS, filename, max_age=86400)


def register_blueprints(app: Flask) -> None:
    from admin import bp as admin_bp
    from portal import bp as portal_bp

    app.register_blueprint(portal_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")


def register_cli_commands(app: Flask) -> None:
    from core.cli import register_cli

    register_cli(app)
