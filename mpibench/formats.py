"""The output formats, named in one place for the parser (cheap to import) and export.py."""

EXPORT_FORMATS = ("csv", "json", "jsonl", "md", "llama-bench-csv", "jtl")  # `mpibench export --format`
ROW_FORMATS = ("csv", "json", "jsonl")  # `export --rows`: one row per task
OUTPUT_FORMATS = ("md", "csv", "json", "jsonl")  # `run/bench -o`: llama-bench's, for the table printed at the end
