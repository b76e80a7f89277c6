"""Command-line parts of ops: ``serve`` flags for alerts and the request log,
``holdfast admin status`` and ``holdfast log search``. ``holdfast/cli.py`` wires them in.

Exit codes scripts can rely on:

============================  ====================================================
``holdfast admin status``     0 ok · 1 degraded or starting · 3 node unreachable or
                              bad answer · 4 critical
``holdfast log search``       0 records found · 1 none found · 3 log unreadable
``holdfast user ...``         0 done · 1 refused (exists, not found, owns buckets)
                              · 3 index unavailable
every command                 2 usage error
============================  ====================================================
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from holdfast.config import Config
from holdfast.sizes import format_size, parse_size

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_CRITICAL = 4
DEFAULT_ENDPOINT = "http://127.0.0.1:9000"


def _env_list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


# -- serve flags -------------------------------------------------------------------------------


def add_serve_args(p: argparse.ArgumentParser) -> None:
    ops = p.add_argument_group("operations (status, request log, alerts)")
    ops.add_argument("--ops-dir", metavar="DIR", help="ops state (default <first --data>/ops)")
    ops.add_argument(
        "--request-log-max-bytes",
        type=parse_size,
        default=Config.request_log_max_bytes,
        metavar="SIZE",
        help="size cap of the request log, e.g. 256M (default 256M)",
    )
    ops.add_argument(
        "--status-refresh",
        type=float,
        default=Config.status_refresh_seconds,
        metavar="SECONDS",
        help="how often each worker refreshes the status snapshot "
        f"(default {Config.status_refresh_seconds:g})",
    )
    ops.add_argument(
        "--metrics-token",
        default=os.environ.get("HOLDFAST_METRICS_TOKEN"),
        metavar="TOKEN",
        help="bearer token that may read /_holdfast/metrics (root may always); prefer the env "
        "HOLDFAST_METRICS_TOKEN, a flag shows in ps",
    )
    ops.add_argument(
        "--public-status",
        action="store_true",
        default=os.environ.get("HOLDFAST_PUBLIC_STATUS", "") not in ("", "0"),
        help="let anyone read /_holdfast/status and /_holdfast/metrics (default: root, and the "
        "metrics token; env HOLDFAST_PUBLIC_STATUS=1)",
    )
    ops.add_argument(
        "--alert-webhook",
        action="append",
        default=None,
        metavar="URL",
        help="POST alerts here as JSON; tried first, in order; may repeat "
        "(env HOLDFAST_ALERT_WEBHOOK, comma-separated)",
    )
    ops.add_argument(
        "--alert-smtp",
        default=os.environ.get("HOLDFAST_ALERT_SMTP"),
        metavar="HOST:PORT",
        help="mail alerts through this server, after the webhooks fail (env HOLDFAST_ALERT_SMTP; "
        "credentials from HOLDFAST_ALERT_SMTP_USER / HOLDFAST_ALERT_SMTP_PASSWORD)",
    )
    ops.add_argument(
        "--alert-smtp-starttls",
        action="store_true",
        help="upgrade the SMTP connection with STARTTLS (default: off)",
    )
    ops.add_argument(
        "--alert-email-to",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="recipient of alert mail; may repeat (env HOLDFAST_ALERT_EMAIL_TO, comma-separated)",
    )
    ops.add_argument(
        "--alert-email-from",
        default=os.environ.get("HOLDFAST_ALERT_EMAIL_FROM") or Config.alert_email_from,
        metavar="ADDRESS",
        help=f"sender of alert mail (env HOLDFAST_ALERT_EMAIL_FROM; default {Config.alert_email_from})",
    )
    ops.add_argument(
        "--alert-free-percent",
        type=float,
        default=Config.alert_free_percent,
        metavar="PCT",
        help=f"alert when a drive has less free space than this (default {Config.alert_free_percent:g}%%)",
    )
    ops.add_argument(
        "--alert-error-rate",
        type=float,
        default=Config.alert_error_rate,
        metavar="SHARE",
        help="alert when this share of requests fails with 5xx over the error window "
        f"(default {Config.alert_error_rate:g})",
    )
    ops.add_argument(
        "--alert-error-window",
        type=float,
        default=Config.alert_error_window_seconds,
        metavar="SECONDS",
        help=f"window for --alert-error-rate (default {Config.alert_error_window_seconds:g})",
    )
    ops.add_argument(
        "--alert-backlog-minutes",
        type=int,
        default=Config.alert_backlog_minutes,
        metavar="N",
        help="alert when the repair backlog has grown for this many minutes in a row "
        f"(default {Config.alert_backlog_minutes})",
    )
    ops.add_argument(
        "--alert-eval-interval",
        type=float,
        default=Config.alert_eval_seconds,
        metavar="SECONDS",
        help=f"how often the alert rules run (default {Config.alert_eval_seconds:g})",
    )
    ops.add_argument(
        "--alert-retry-base",
        type=float,
        default=Config.alert_retry_base_seconds,
        metavar="SECONDS",
        help="first delay before an undelivered alert is retried; doubles each time "
        f"(default {Config.alert_retry_base_seconds:g})",
    )
    ops.add_argument(
        "--alert-retry-max",
        type=float,
        default=Config.alert_retry_cap_seconds,
        metavar="SECONDS",
        help=f"longest delay between alert retries (default {Config.alert_retry_cap_seconds:g})",
    )


def apply_serve_args(config: Config, args: argparse.Namespace) -> None:
    if getattr(args, "ops_dir", None):
        config.ops_dir = os.path.abspath(args.ops_dir)
    if not hasattr(args, "alert_free_percent"):
        return  # not the serve command
    config.request_log_max_bytes = args.request_log_max_bytes
    config.status_refresh_seconds = args.status_refresh
    config.metrics_token = args.metrics_token or None
    config.public_status = args.public_status
    config.alert_webhooks = args.alert_webhook or _env_list("HOLDFAST_ALERT_WEBHOOK")
    config.alert_smtp = args.alert_smtp
    config.alert_smtp_starttls = args.alert_smtp_starttls
    config.alert_email_to = args.alert_email_to or _env_list("HOLDFAST_ALERT_EMAIL_TO")
    config.alert_email_from = args.alert_email_from
    config.alert_free_percent = args.alert_free_percent
    config.alert_error_rate = args.alert_error_rate
    config.alert_error_window_seconds = args.alert_error_window
    config.alert_backlog_minutes = args.alert_backlog_minutes
    config.alert_eval_seconds = args.alert_eval_interval
    config.alert_retry_base_seconds = args.alert_retry_base
    config.alert_retry_cap_seconds = args.alert_retry_max
    if config.alert_smtp and not config.alert_email_to:
        raise SystemExit("holdfast: --alert-smtp needs at least one --alert-email-to")


# -- holdfast admin status -------------------------------------------------------------------


def add_admin_args(sub: Any) -> None:
    admin = sub.add_parser("admin", help="ask a running node")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    status = admin_sub.add_parser("status", help="the node's status, from /_holdfast/status")
    status.add_argument(
        "--endpoint",
        type=endpoint_url,
        default=os.environ.get("HOLDFAST_ENDPOINT", DEFAULT_ENDPOINT),
        metavar="URL",
        help="the node's URL, or HOST:PORT for plain HTTP "
        f"(default {DEFAULT_ENDPOINT}, env HOLDFAST_ENDPOINT)",
    )
    status.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    status.add_argument("--ca-bundle", metavar="PEM", help="CA certificate for an HTTPS endpoint")
    status.add_argument(
        "--insecure", action="store_true", help="do not verify the HTTPS certificate"
    )
    status.add_argument("--json", action="store_true", help="print the status JSON as it came")
    status.add_argument(
        "--data",
        metavar="DIR",
        help="read the root keys from this node's data directory (default: the environment, "
        "HOLDFAST_ACCESS_KEY/HOLDFAST_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    )
    status.add_argument("--region", default="us-east-1", help="the node's region")


def endpoint_url(text: str) -> str:
    """``http://h:p`` or ``https://h:p`` as given; ``h:p`` (as ``--listen`` takes it) means
    plain HTTP, so the address the server printed can be pasted as is."""
    text = text.strip()
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise argparse.ArgumentTypeError(f"not an http(s) URL or HOST:PORT: {text!r}")
        return text
    if not text or "/" in text:
        raise argparse.ArgumentTypeError(f"not an http(s) URL or HOST:PORT: {text!r}")
    return "http://" + text


def admin_keys(data: str | None) -> tuple[str, str] | None:
    """The root keys the status request is signed with: --data's credentials file, else the
    environment (Holdfast's own variables, then the AWS ones)."""
    if data:
        from holdfast.service.users import CREDENTIALS_FILE

        path = Path(data) / CREDENTIALS_FILE
        try:
            creds = json.loads(path.read_text())
            return creds["access_key"], creds["secret_key"]
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(
                f"holdfast: cannot read the root keys from {path} ({e}); a node given its keys "
                "in HOLDFAST_ACCESS_KEY/HOLDFAST_SECRET_KEY has no such file: set those instead"
            ) from None
    for ak, sk in (
        ("HOLDFAST_ACCESS_KEY", "HOLDFAST_SECRET_KEY"),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ):
        if os.environ.get(ak) and os.environ.get(sk):
            return os.environ[ak], os.environ[sk]
    return None


def signed_headers(
    url: str, keys: tuple[str, str] | None, region: str, headers: dict[str, str]
) -> dict[str, str]:
    """``headers`` plus a SigV4 signature of a GET of ``url`` (awscrt's signer)."""
    if keys is None:
        return headers
    from awscrt import auth, http

    parts = urllib.parse.urlsplit(url)
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(*keys),
        region=region,
        service="s3",
        signed_body_value=auth.AwsSignedBodyValue.EMPTY_SHA256,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = http.HttpRequest("GET", path, http.HttpHeaders([("host", parts.netloc)]))
    signed = auth.aws_sign_request(request, config).result(10)
    return {**headers, **{k: v for k, v in signed.headers if k.lower() != "host"}}


def fetch_status(
    endpoint: str,
    timeout: float,
    ca: str | None,
    insecure: bool,
    keys: tuple[str, str] | None = None,
    region: str = "us-east-1",
) -> dict:
    context = None
    if endpoint.startswith("https"):
        context = ssl.create_default_context(cafile=ca)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    url = endpoint.rstrip("/") + "/_holdfast/status?format=json"
    headers = signed_headers(url, keys, region, {"Accept": "application/json"})
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read())


def cmd_admin(args: argparse.Namespace) -> int:
    keys = admin_keys(args.data)
    try:
        status = fetch_status(
            args.endpoint, args.timeout, args.ca_bundle, args.insecure, keys, args.region
        )
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            hint = (
                ""
                if keys
                else " (no root keys: pass --data DIR, or set HOLDFAST_ACCESS_KEY and "
                "HOLDFAST_SECRET_KEY)"
            )
            print(
                f"holdfast: {args.endpoint} refused the status request ({e.code}){hint}",
                file=sys.stderr,
            )
            return EXIT_UNREACHABLE
        print(f"holdfast: cannot get status from {args.endpoint}: HTTP {e.code}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        print(f"holdfast: cannot get status from {args.endpoint}: {reason}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_status(status))
    state = status.get("state")
    return {
        "ok": EXIT_OK,
        "starting": EXIT_FAILED,
        "degraded": EXIT_FAILED,
        "critical": EXIT_CRITICAL,
    }.get(state, EXIT_UNREACHABLE)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def format_status(s: dict) -> str:
    node, index = s.get("node", {}), s.get("index", {})
    out = [
        f"node {node.get('hostname')}  version {node.get('version')}  state {s.get('state', '?').upper()}"
        f"  up {s.get('uptime_seconds', 0):.0f}s  (snapshot {s.get('snapshot_age_seconds') or 0:.1f}s old)"
    ]
    for p in s.get("problems", []):
        out.append(f"  {p['severity'].upper():8} {p['what']}")
    out.append("")
    out.append(
        table(
            ["DRIVE", "PATH", "STATE", "SIZE", "FREE", "FREE%", "REASON"],
            [
                [
                    d["id"],
                    d["path"],
                    d["state"],
                    format_size(d.get("total_bytes"), short=True),
                    format_size(d.get("free_bytes"), short=True),
                    d.get("free_percent"),
                    d.get("reason") or "",
                ]
                for d in s.get("drives", [])
            ],
        )  # fmt: skip
    )
    out.append("")
    out.append(
        f"index     {index.get('state')}  objects {index.get('objects', '-')}  buckets {index.get('buckets', '-')}"
        f"  stored {format_size(index.get('stored_bytes'), short=True)}  corrupt {index.get('corrupt_objects', '-')}"
        + (f"  ({index['error']})" if index.get("error") else "")
    )
    t1 = (s.get("traffic") or {}).get("1m") or {}
    out.append(
        f"requests  {t1.get('requests_per_second', '-')}/s  5xx {t1.get('error_rate', '-')}"
        f"  p99 {t1.get('latency_p99_ms', '-')} ms  (last minute)"
    )
    for name in ("repair", "scrub"):
        section = s.get(name) or {}
        if section.get("available"):
            fields = ", ".join(
                f"{k} {v}"
                for k, v in section.items()
                if k != "available" and not isinstance(v, (dict, list))
            )
            out.append(f"{name:9} {fields}")
        else:
            out.append(f"{name:9} not available")
    alerts = s.get("alerts") or {}
    channels = ", ".join(alerts.get("channels") or []) or "no channel configured"
    out.append(
        f"alerts    {alerts.get('pending', '-')} pending, {alerts.get('active_count', '-')} active  ({channels})"
    )
    if alerts.get("last_error"):
        out.append(f"          last error: {alerts['last_error']}")
    return "\n".join(out)


# -- holdfast log search ----------------------------------------------------------------------


def add_log_args(sub: Any, add_data_arg: Any) -> None:
    logp = sub.add_parser("log", help="the request log")
    log_sub = logp.add_subparsers(dest="log_command", required=True)
    search = log_sub.add_parser(
        "search",
        help="find requests (newest first)",
        description="Reads the log files directly: works while the node is down.",
    )
    add_data_arg(search)
    search.add_argument("--ops-dir", metavar="DIR", help="ops directory if not <first --data>/ops")
    search.add_argument("--since", help="15m, 2h, 1d, HH:MM, ISO 8601 or epoch seconds")
    search.add_argument("--until", help="same forms as --since")
    search.add_argument("--bucket")
    search.add_argument("--key", help="key prefix")
    search.add_argument("--access-key")
    search.add_argument("--status", help="a code (404) or a class (5xx)")
    search.add_argument("--request-id")
    search.add_argument("--operation", help="S3 operation name, e.g. PutObject")
    search.add_argument("--limit", type=int, default=100)
    search.add_argument("--json", action="store_true", help="a JSON array of the records")


def cmd_log(args: argparse.Namespace, config: Config) -> int:
    from holdfast.ops.api import ApiError, log_query
    from holdfast.ops.requestlog import REQUEST_LOG_DIR, search

    params = {
        "since": args.since,
        "until": args.until,
        "bucket": args.bucket,
        "key": args.key,
        "access_key": args.access_key,
        "status": args.status,
        "request_id": args.request_id,
        "operation": args.operation,
        "limit": str(args.limit),
    }
    try:
        query = log_query({k: v for k, v in params.items() if v})
    except ApiError as e:
        print(f"holdfast: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    directory = Path(config.ops_path) / REQUEST_LOG_DIR
    if not directory.is_dir():
        print(f"holdfast: no request log at {directory}; pass the node's --data", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        records = search(directory, query)
    except OSError as e:
        print(f"holdfast: cannot read {directory}: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(records, indent=1))
    else:
        print(format_records(records))
    return EXIT_OK if records else EXIT_FAILED


def format_records(records: list[dict]) -> str:
    rows = [
        [
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["ts"]))
            + f".{int(r['ts'] * 1000) % 1000:03d}",
            r["request_id"],
            r["status"],
            (r.get("error_code") or "") + (" (aborted)" if r.get("outcome") == "aborted" else ""),
            r["operation"],
            "/".join(x for x in (r.get("bucket"), r.get("key")) if x) or "/",
            r.get("access_key") or "",
            r.get("remote") or "",
            format_size(r.get("bytes_in"), short=True),
            format_size(r.get("bytes_out"), short=True),
            f"{r['latency_ms']:.1f}",
        ]
        for r in records
    ]
    return table(
        [
            "TIME",
            "REQUEST ID",
            "STATUS",
            "ERROR",
            "OPERATION",
            "BUCKET/KEY",
            "ACCESS KEY",
            "REMOTE",
            "IN",
            "OUT",
            "MS",
        ],
        rows,
    )
