"""The local Hugging Face Hub of the tests (README.md): `server` (the HTTP server, stdlib only) and `recipe_repos` (the
recipes' Hub ids recreated on it)."""
