"""Django settings for Obol.

Everything a deployment changes comes from environment variables (prefixed OBOL_); the defaults
run the embedded SQLite database in ./var, which is what `make run` uses.
"""
import os
from pathlib import Path

from obol.core.dburl import database_from_url

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("OBOL_DATA_DIR", Path.cwd() / "var")).resolve()

DEBUG = os.environ.get("OBOL_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("OBOL_SECRET_KEY", "obol-insecure-development-key-change-me-in-production")
ALLOWED_HOSTS = [h for h in os.environ.get("OBOL_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "obol.core",
    "obol.catalog",
    "obol.customers",
    "obol.subscriptions",
    "obol.balances",
    "obol.usage",
    "obol.charging",
    "obol.billing",
    "obol.notifications",
    "obol.api",
    "obol.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "obol.core.middleware.StaffTenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

AUTHENTICATION_BACKENDS = ["obol.core.roles.RoleBackend"]

ROOT_URLCONF = "obol.urls"
WSGI_APPLICATION = "obol.wsgi.application"

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

DATABASES = {
    "default": database_from_url(
        os.environ.get("OBOL_DATABASE_URL", f"sqlite:///{DATA_DIR / 'obol.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("OBOL_LOG_LEVEL", "WARNING")},
}

NINJA_PAGINATION_PER_PAGE = 50
NINJA_PAGINATION_MAX_LIMIT = 500

# Outgoing e-mail (alerts): Django's EMAIL_* settings from OBOL_SMTP_* and OBOL_MAIL_FROM.
EMAIL_HOST = os.environ.get("OBOL_SMTP_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("OBOL_SMTP_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("OBOL_SMTP_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("OBOL_SMTP_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("OBOL_SMTP_TLS", "0") == "1"
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = SERVER_EMAIL = os.environ.get("OBOL_MAIL_FROM", "obol@localhost")
