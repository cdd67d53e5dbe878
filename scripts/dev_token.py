"""Print a development token: a device token for a patient, or a staff token with a role."""

from __future__ import annotations

import argparse
import sys
import uuid

from shared.auth import ROLES, TokenService
from shared.settings import MisspeltSettings, ServiceSettings, from_environment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patient", help="pseudonymous patient UUID: prints a device token")
    parser.add_argument("--role", choices=sorted(ROLES), help="prints a staff token with this role")
    parser.add_argument("--staff", default=None, help="staff id (default: dev-<role>)")
    parser.add_argument("--name", default=None, help="the staff member's display name (default: the staff id)")
    parser.add_argument("--device", default=None, help="device id for a device token (default: dev-tablet)")
    args = parser.parse_args()
    try:
        # Checked as a service's are: a misspelt AUTH_SECRET would sign with the development secret, in silence.
        settings = from_environment(ServiceSettings, "dev-token")
    except MisspeltSettings as refused:
        print(refused, file=sys.stderr)
        return 2
    if settings.environment == "production":
        print("refusing to mint tokens with production settings", file=sys.stderr)
        return 2
    tokens = TokenService(settings.auth_secret, settings.auth_issuer, settings.auth_audience)
    if args.patient:
        try:
            patient = uuid.UUID(args.patient)
        except ValueError:
            print(f"PATIENT must be a UUID, got {args.patient!r}", file=sys.stderr)
            return 2
        print(tokens.issue_device_token(patient, args.device or "dev-tablet"))
        return 0
    if args.role:
        staff_id = args.staff or f"dev-{args.role}"
        print(tokens.issue_staff_token(staff_id, {args.role}, name=args.name or staff_id))
        return 0
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
