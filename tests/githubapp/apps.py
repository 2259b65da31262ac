"""A GitHub-like app: organisations, teams, repositories, issues and outside collaborators."""

from django.apps import AppConfig


class GithubConfig(AppConfig):
    """Roles within a scope: an organisation (through teams), a repository (collaborators)."""

    name = "tests.githubapp"
    label = "github"
    default_auto_field = "django.db.models.BigAutoField"
