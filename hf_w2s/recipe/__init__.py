"""Recipes: one student trained from a YAML recipe (``hf-w2s train``, ``recipes/configs/``)."""

from .config import RecipeArguments
from .runner import StudentRecipe, run_recipe

__all__ = ["RecipeArguments", "StudentRecipe", "run_recipe"]
