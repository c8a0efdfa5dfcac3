"""Runs scim2-tester (PyPI) against a running gateway's /scim/v2 and exits
non-zero when any check fails. Called by scripts/scim-conformance.

Usage: SCIM_TOKEN=iamgw_scim_... python scim_conformance.py BASE_URL
"""

import os
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

FAILED = {Status.ERROR, Status.CRITICAL}
PASSED = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.DEVIATION}


def main() -> int:
    base = sys.argv[1]
    token = os.environ["SCIM_TOKEN"]
    with httpx2.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as http:
        client = SyncSCIMClient(http)
        results = check_server(client, resource_types=["User", "Group"])
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for r in results:
        if r.status in FAILED:
            counts["failed"] += 1
            mark = "FAIL"
        elif r.status in PASSED:
            counts["passed"] += 1
            mark = "ok  "
        else:
            counts["skipped"] += 1
            mark = "skip"
        where = f"[{r.resource_type}] " if r.resource_type else ""
        print(f"{mark} {where}{r.title} ({r.status.name}): {r.reason or ''}".rstrip())
        if r.status in FAILED and r.data is not None:
            print(f"       data: {r.data!r}"[:2000])
    print(
        f"scim2-tester: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped"
    )
    if counts["passed"] == 0:
        return 1
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
