"""Settings of the invoice-approval demo project.

Development settings only: DEBUG is on and the secret key is public. Two SQLite files are
used: ``db.sqlite3`` for the application and ``audit.sqlite3`` for clearance's audit trail, so
that a denial is recorded even when the surrounding transaction rolls back.
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "django-insecure-demo-only-do-not-use-in-production"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "clearance",
    # The read-only console for staff, under /clearance/: actions, matrix, explain, audit.
    "clearance.console",
    # The OpenID AuthZEN endpoint under /authzen/, answered by the same gates.
    "clearance.contrib.authzen",
    "invoices",
    # The AuthZEN "Todo" interop scenario (manage.py seed_todos).
    "todos",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Request id, method, path and address on every audit record; one audit scope per request.
    "clearance.middleware.ClearanceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Logs a warning for any page answered without an authorization decision.
    "clearance.contrib.guard.UnguardedViewMiddleware",
]

# Django's permissions first; then has_perm(perm, obj) answered through clearance's gates.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "clearance.backends.ClearanceBackend",
]

ROOT_URLCONF = "demo.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demo.wsgi.application"
ASGI_APPLICATION = "demo.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    },
    # The audit trail lives in a database of its own: SQLite allows one writer at a time, and a
    # second file lets a denial be written even while the main transaction is rolled back.
    "audit": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "audit.sqlite3",
    },
}

# AuditRecord rows are read from and written to the "audit" database, and only there.
DATABASE_ROUTERS = ["clearance.audit.routers.AuditRouter"]

CLEARANCE = {
    "AUDIT_DATABASE": "audit",
    # People name invoices by number (manage.py clearance explain alice invoices.approve ACME-003).
    "NATURAL_KEYS": {"invoices.Invoice": "number"},
    # Pages that decide nothing on purpose: the home redirect, login, and the admin's own pages
    # other than the invoice admin (which is scoped by clearance).
    "GUARD_EXEMPT": [
        r"^$",
        r"^accounts/",
        r"^static/",
        r"^admin/(?!invoices/invoice/)",
        r"^\.well-known/",
        r"^authzen/",
    ],
}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "invoices:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
