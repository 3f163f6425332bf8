"""`python -m gateway`: serve the public API with the settings from the environment (VR_HOST, VR_PORT,
VR_WORKERS, VR_TLS_CERTFILE/VR_TLS_KEYFILE for TLS 1.3 only)."""

from gateway.serve import serve
from voicereel.settings import get_settings

if __name__ == "__main__":
    serve(get_settings())
