"""A minimal receiver of Runlane's event webhooks (README "Event webhooks").

    python event_receiver.py PORT_FILE SECRET_FILE

Listens on a free port of 127.0.0.1 (written to PORT_FILE), verifies each delivery's Standard
Webhooks signature with the endpoint's secret (read from SECRET_FILE when a request comes, so
the endpoint can be subscribed after the receiver started) and prints its event type and run.
Anything that fails verification is answered 401, which Runlane retries.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from standardwebhooks import Webhook, WebhookVerificationError

port_file, secret_file = Path(sys.argv[1]), Path(sys.argv[2])


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            secret = secret_file.read_text().strip()
            event = Webhook(secret).verify(body, dict(self.headers))
        except (OSError, WebhookVerificationError) as problem:
            print("rejected:", problem, flush=True)  # noqa: T201 - what the example shows
            self.send_response(401)
        else:
            run = event["data"]["run"]
            shown = (event["type"], run["id"], run["status"], self.headers["webhook-id"])
            print(*shown, flush=True)  # noqa: T201 - what the example shows
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
port_file.write_text(json.dumps(server.server_address[1]))
server.serve_forever()
