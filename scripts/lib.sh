# Shared checks for the comparison scripts (sourced; they run from the repository root).

# need_count NAME VALUE [MIN]: VALUE must be an integer >= MIN (default 1).
need_count() {
  local name=$1 value=$2 min=${3:-1}
  # Up to 9 digits and no leading zero: bash arithmetic would read 08 as octal.
  if ! [[ $value =~ ^(0|[1-9][0-9]{0,8})$ ]] || ((value < min)); then
    echo "$(basename "$0"): $name = '$value': expected an integer >= $min" >&2
    exit 2
  fi
}

# need_precision NAME VALUE: VALUE must be a precision both sides take (auto, fp32 or bf16).
need_precision() {
  case $2 in
    auto | fp32 | bf16) ;;
    *) echo "$(basename "$0"): $1 = '$2': expected auto, fp32 or bf16" >&2; exit 2 ;;
  esac
}

# need_tools: the release binary and the project's Python, before any long run starts.
need_tools() {
  if [ ! -x target/release/microvision ]; then
    echo "$(basename "$0"): target/release/microvision is missing: run 'make build' first" >&2
    exit 2
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "$(basename "$0"): .venv/bin/python is missing: run 'scripts/setup.sh' first" >&2
    exit 2
  fi
}

# usage_if_asked SCRIPT "$@": prints SCRIPT's header comment for -h/--help and exits.
usage_if_asked() {
  local script=$1
  shift
  case ${1:-} in
    -h | --help) sed -n '2,/^set /p' "$script" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
}
