"""The one exception the readers raise."""


class RunError(Exception):
    """A run directory or shard is malformed, incomplete, or fails verification. The message names the file
    and what is wrong."""


# The name examples/read_shards.py used before the package existed.
ShardError = RunError
