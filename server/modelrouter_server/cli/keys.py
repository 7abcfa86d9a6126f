"""`modelrouter keys create --tenant NAME`: a new API key and the config lines for it.

The key is printed once and never stored; the config holds only its sha256.
"""

from __future__ import annotations

import argparse
import sys

from modelrouter_server.cli._common import EXIT_OK, EXIT_USAGE
from modelrouter_server.config.security import TENANT_NAME
from modelrouter_server.tenancy.keys import key_digest, new_key


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("keys", help="make API keys for tenants")
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="print a new key and the config lines for it")
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace) -> int:
    tenant = str(args.tenant)
    if not TENANT_NAME.fullmatch(tenant):
        print(
            f"modelrouter: --tenant: {tenant!r} is not a tenant name "
            "(letters, digits, _ . -; at most 64)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    key = new_key()
    print(f"A new API key for tenant {tenant!r}. It is shown only this once; store it now:")
    print()
    print(f"    {key}")
    print()
    print("Add its sha256 to the router's config file (for a rotation, add it to the")
    print("tenant's existing list, and remove the old digest once callers have switched):")
    print()
    print(f"[tenants.{tenant}]")
    print(f'api_key_sha256 = ["{key_digest(key)}"]')
    print()
    print("Callers send it as gRPC metadata `authorization: Bearer <key>`")
    print("(or MODELROUTER_API_KEY=<key> for the modelrouter command).")
    return EXIT_OK
