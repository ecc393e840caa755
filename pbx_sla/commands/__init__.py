"""One module per top-level command (README.md, "Commands"); each exposes ``async def run(args, settings) -> int``."""
