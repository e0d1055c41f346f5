"""Local SES v2 + EventBridge server (moto), single-threaded.

moto's stock server is threaded and loses concurrent writes; werkzeug's
run_simple with threaded=False serialises requests, which is what we want.
Usage: python moto_server.py PORT
"""
import sys

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

port = int(sys.argv[1]) if len(sys.argv) > 1 else 4566
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", port, app, threaded=False, use_reloader=False)
