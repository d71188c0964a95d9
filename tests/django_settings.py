"""The example project's settings, as the test suite uses them."""

from examples.django_project.demo.settings import *  # noqa: F403
