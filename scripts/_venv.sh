# Sourced (from the checkout's root) by install.sh, run.sh and test.sh, so that the three agree on:
#   VENV     tcmscan's virtual environment: $TCMSCAN_VENV, else /opt/tcmscan/venv as root and
#            ~/.local/share/tcmscan/venv otherwise
#   BIN_DIR  the directory on PATH where `tcmscan` is linked: $TCMSCAN_BIN, else /usr/local/bin as root and
#            ~/.local/bin otherwise
# A relative path is taken from the checkout (TCMSCAN_VENV=.venv: a venv inside the checkout, for development).
if [[ $(id -u) -eq 0 ]]; then
  VENV="${TCMSCAN_VENV:-/opt/tcmscan/venv}"
  BIN_DIR="${TCMSCAN_BIN:-/usr/local/bin}"
else
  VENV="${TCMSCAN_VENV:-$HOME/.local/share/tcmscan/venv}"
  BIN_DIR="${TCMSCAN_BIN:-$HOME/.local/bin}"
fi
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"
[[ "$BIN_DIR" == /* ]] || BIN_DIR="$PWD/$BIN_DIR"
VENV="${VENV%/}"
