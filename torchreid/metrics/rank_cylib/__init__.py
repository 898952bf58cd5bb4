"""Compiled rank metrics (rank_cy.pyx), built by `pip install -e .`."""
