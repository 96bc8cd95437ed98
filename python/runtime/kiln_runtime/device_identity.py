"""A stable id for this device, kept in its cache folder (`<cache>/device-id`).

It places the device in or out of a staged rollout (the resolver hashes it with the rollout id, so the device keeps
its side for the whole rollout) and names it in its telemetry. A random UUID made on first use: it says nothing
about the host. A new cache folder is a new device, which is what a re-imaged device is.
"""

from __future__ import annotations

import re
import uuid

from .cache import Cache, write_atomic

_DEVICE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def device_id(cache: Cache) -> str:
    path = cache.root / "device-id"
    with cache.lock("device-id"):
        try:
            value = path.read_text().strip()
            if _DEVICE_ID.match(value):
                return value
        except FileNotFoundError:
            pass
        value = str(uuid.uuid4())
        write_atomic(path, (value + "\n").encode())
        return value
