"""Validates JSON documents against a JSON schema (jsonschema, draft 2020-12).

Usage: check_schema.py SCHEMA.json FILE.jsonl  (one JSON document per line)
Prints each document's errors; exit 1 if any document is invalid or there is none.
"""
import json
import sys

import jsonschema


def main():
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
    count = bad = 0
    with open(sys.argv[2]) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            count += 1
            errors = list(validator.iter_errors(json.loads(line)))
            for e in errors:
                print(f"document {n}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
            bad += bool(errors)
    print(f"{count} documents, {bad} invalid")
    sys.exit(1 if bad or not count else 0)


if __name__ == "__main__":
    main()
