"""URLconf of the Django benchmark; ``benchmarks.__main__`` fills it once Django is set up."""

from typing import Any

urlpatterns: list[Any] = []
