"""Analysis scripts over mpibench results files: plots and reports."""
