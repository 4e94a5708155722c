#!/usr/bin/env bash
# Renders haproxy.cfg.in for N Switchyard nodes and prints the configuration on stdout.
#
#   deploy/haproxy/render.sh --bind 127.0.0.1:8080 --stats 127.0.0.1:8404 \
#       node-1=127.0.0.1:8081/9911 node-2=127.0.0.1:8082/9912 ...
#
# Each node is NAME=HOST:CLIENT_PORT/ADMIN_PORT: HAProxy sends clients to HOST:CLIENT_PORT and checks
# GET /readyz on HOST:ADMIN_PORT (so the node's --admin must listen on an address HAProxy can reach).
# Shortcut for N nodes on loopback addresses 127.0.0.1..N with the same ports on each:
#   deploy/haproxy/render.sh --bind 127.0.0.1:8080 --stats 127.0.0.1:8404 --loopback N [CLIENT_PORT ADMIN_PORT]
# Then: haproxy -c -f haproxy.cfg (check), haproxy -db -f haproxy.cfg (foreground).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bind="0.0.0.0:8080"
stats="127.0.0.1:8404"
nodes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bind) bind="$2"; shift 2 ;;
    --stats) stats="$2"; shift 2 ;;
    --loopback)
      n="$2"; shift 2
      cport=8080; aport=9901
      if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then cport="$1"; shift; fi
      if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then aport="$1"; shift; fi
      for i in $(seq 1 "$n"); do nodes+=("node-$i=127.0.0.$i:$cport/$aport"); done
      ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *=*:*/*) nodes+=("$1"); shift ;;
    *) echo "render.sh: bad argument '$1' (want NAME=HOST:CLIENT_PORT/ADMIN_PORT)" >&2; exit 2 ;;
  esac
done
if [ ${#nodes[@]} -eq 0 ]; then
  echo "render.sh: no nodes given" >&2
  exit 2
fi
servers=""
for spec in "${nodes[@]}"; do
  name="${spec%%=*}"
  rest="${spec#*=}"
  addr="${rest%/*}"
  admin="${rest##*/}"
  servers+="    server ${name} ${addr} check port ${admin}"$'\n'
done
servers="${servers%$'\n'}"
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    @SERVERS@) printf '%s\n' "$servers" ;;
    '#   @'*) ;; # the placeholder legend is for the template only
    *)
      line="${line//@BIND@/$bind}"
      line="${line//@STATS@/$stats}"
      printf '%s\n' "$line"
      ;;
  esac
done < "$here/haproxy.cfg.in"
