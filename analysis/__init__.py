"""Analysis of Sacred run records: tidy frames, rliable statistics, seaborn figures and tables.

Reads files only; never imports torch."""
