"""One module per top-level command of spec.md; each exposes ``async def run(args, settings) -> int``."""
