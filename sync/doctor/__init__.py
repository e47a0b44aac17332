"""`doctor`: one line per check of the set-up, the stored users and the last run."""
