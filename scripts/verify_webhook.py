"""Verifies one webhook request with the reference `standardwebhooks` package.

Reads WEBHOOK_SECRET, WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE and
WEBHOOK_BODY from the environment; exits 0 if the package accepts the request,
1 (with the reason) if not. Used by tests/e2e/webhooks.rs.
"""

import os
import sys

from standardwebhooks.webhooks import Webhook

headers = {
    "webhook-id": os.environ["WEBHOOK_ID"],
    "webhook-timestamp": os.environ["WEBHOOK_TIMESTAMP"],
    "webhook-signature": os.environ["WEBHOOK_SIGNATURE"],
}
try:
    Webhook(os.environ["WEBHOOK_SECRET"]).verify(os.environ["WEBHOOK_BODY"], headers)
except Exception as error:  # the package raises its own WebhookVerificationError
    print(f"refused: {error!r}")
    sys.exit(1)
print("verified")
