# What the Snakefile checks in config/config.yaml before Snakemake loads it (included
# before `configfile:`), and in the loaded config (with --config's values), whose
# defaults it then fills in from the schema: each fault one line (deepfm_rec.config).
import os

from deepfm_rec.config import completed, read_config, read_schema
from deepfm_rec.data.errors import DataError
from snakemake.exceptions import WorkflowError


def check_config_file(path):
    """A file that is not UTF-8, not YAML, empty or not a mapping, or holds a number
    PyYAML reads as text, as one WorkflowError naming the file (and line)."""
    if not os.path.exists(path):
        return  # Snakemake says so, unless --configfile stands in for it
    try:
        read_config(path)
    except DataError as error:
        raise WorkflowError(str(error)) from None


def check_config_keys(config, schema):
    """An unknown key (with the nearest valid name) or a value the schema refuses, as one
    WorkflowError naming the key (Snakemake's validate prints the whole schema); then the
    schema's defaults filled in, as Snakemake's validate(..., set_default=True) fills
    them (tests/test_config.py), without its second reading and check of the schema
    (0.3 s of CPU at every snakemake start, each cluster job's included)."""
    try:
        completed(config, read_schema(schema))
    except DataError as error:
        raise WorkflowError(str(error)) from None
