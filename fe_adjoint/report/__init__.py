"""Run statistics and their readable report."""
