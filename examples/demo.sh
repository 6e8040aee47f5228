#!/usr/bin/env bash
# Shows mtlsproxy at work on loopback: builds the proxy and an mTLS echo server,
# makes a throwaway PKI with openssl, then sends plain-HTTP requests through the
# proxy with curl and checks what the upstream saw. Exits non-zero when a check
# fails. Everything lives in a temporary folder that is removed at the end.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mtlsproxy-demo.XXXXXX")
pids=()

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

failed=0
pass() { printf '   ok: %s\n' "$*"; }
fail() {
	printf '   FAILED: %s\n' "$*"
	failed=$((failed + 1))
}
step() { printf '\n== %s\n' "$*"; }

# wait_for FILE PATTERN: prints the first match of PATTERN in FILE, waiting up to
# ten seconds for it to appear.
wait_for() {
	local i
	for i in $(seq 1 100); do
		if grep -qoE "$2" "$1" 2>/dev/null; then
			grep -oE "$2" "$1" | head -n 1
			return 0
		fi
		sleep 0.1
	done
	echo "demo: timed out waiting for /$2/ in $1:" >&2
	cat "$1" >&2 || true
	return 1
}

step "Building mtlsproxy and the echo server"
(cd "$root" && go build -o "$work/mtlsproxy" ./cmd/mtlsproxy)
(cd "$root" && go build -o "$work/echoserver" ./examples/echoserver)

step "Making a throwaway PKI with openssl"
pki="$work/pki"
mkdir -p "$pki"

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null
}

# root NAME SUBJECT: a self-signed CA.
root_ca() {
	newkey "$1"
	openssl req -x509 -new -key "$pki/$1.key" -subj "$2" -days 90 -out "$pki/$1.pem" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# issue NAME SUBJECT ISSUER EXTENSIONS: a certificate signed by ISSUER.
issue() {
	newkey "$1"
	openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
	printf '%b\n' "$4" >"$pki/$1.ext"
	openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$3.pem" -CAkey "$pki/$3.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days 90 -extfile "$pki/$1.ext" \
		-out "$pki/$1.pem" 2>/dev/null
}

ca_ext='basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign'
client_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature'
client_ext="$client_ext\nextendedKeyUsage=clientAuth"
server_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature'
server_ext="$server_ext\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:internal.demo.test"

root_ca client-root "/O=Demo/CN=Demo Client Root CA"
issue client-intermediate "/O=Demo/CN=Demo Client Intermediate CA" client-root "$ca_ext"
issue acme "/O=Acme Corp/CN=acme-webhooks" client-intermediate "$client_ext"
issue globex "/O=Globex/CN=globex-flows" client-intermediate "$client_ext"
issue retired "/O=Initech/CN=initech-retired" client-intermediate "$client_ext"
root_ca server-ca "/O=Demo/CN=Demo Server CA"
issue server "/O=Demo/CN=internal.demo.test" server-ca "$server_ext"
cat "$pki/client-intermediate.pem" "$pki/client-root.pem" >"$pki/client-chain.pem"
chmod 600 "$pki"/*.key
echo "   client root -> intermediate -> acme, globex, retired;" \
	"server CA -> server (DNS:internal.demo.test)"

step "Starting the echo server (mTLS, requires a client certificate)"
"$work/echoserver" -listen 127.0.0.1:0 -cert "$pki/server.pem" -key "$pki/server.key" \
	-client-ca "$pki/client-root.pem" >"$work/echo.out" 2>"$work/echo.err" &
pids+=($!)
echo_addr=$(wait_for "$work/echo.out" '127\.0\.0\.1:[0-9]+')
echo_port=${echo_addr##*:}
echo "   https://$echo_addr (its certificate names internal.demo.test, not 127.0.0.1)"

step "Writing the configuration"
cat >"$work/config.toml" <<EOF
[proxy]
listen = "127.0.0.1:3128" # replaced by -listen 127.0.0.1:0 below

[egress]
# The demo's upstream runs on 127.0.0.1. By default the proxy refuses loopback and
# private destinations, so that clients cannot reach the proxy host's own network
# through it; allow loopback alone, for this demo only.
allow_cidrs = ["127.0.0.0/8"]

[admin]
disabled = true

[log]
format = "json"

[[certificate]]
name = "acme"
cert_file = "pki/acme.pem"
key_file = "pki/acme.key"
ca_file = "pki/client-chain.pem"
server_name = "internal.demo.test" # the URL says 127.0.0.1; the server is this name
server_ca_file = "pki/server-ca.pem"

[[certificate]]
name = "globex"
cert_file = "pki/globex.pem"
key_file = "pki/globex.key"
ca_file = "pki/client-chain.pem"
server_name = "internal.demo.test"
server_ca_file = "pki/server-ca.pem"

[[certificate]]
name = "retired"
cert_file = "pki/retired.pem"
key_file = "pki/retired.key"
ca_file = "pki/client-chain.pem"
server_name = "internal.demo.test"
server_ca_file = "pki/server-ca.pem"
enabled = false

# The same material as acme, without the server name override.
[[certificate]]
name = "acme-no-sni"
cert_file = "pki/acme.pem"
key_file = "pki/acme.key"
ca_file = "pki/client-chain.pem"
server_ca_file = "pki/server-ca.pem"

[[route]]
host = "127.0.0.1"
port = $echo_port
certificate = "acme"
EOF
echo "   $ mtlsproxy check -config config.toml"
"$work/mtlsproxy" check -config "$work/config.toml" | sed 's/^/   /'

step "Starting mtlsproxy"
"$work/mtlsproxy" serve -config "$work/config.toml" -listen 127.0.0.1:0 \
	>"$work/proxy.out" 2>"$work/proxy.log" &
pids+=($!)
proxy_addr=$(wait_for "$work/proxy.log" '"addr":"127\.0\.0\.1:[0-9]+"' | cut -d'"' -f4)
echo "   http://$proxy_addr"

url="http://127.0.0.1:$echo_port/orders"

# send NAME [CURL ARGS...]: a request through the proxy; keeps the status, the
# response headers and the body in $work/NAME.{status,headers,body}.
send() {
	local name=$1
	shift
	local shown="" arg
	for arg in "$@"; do
		case $arg in
		*" "*) shown+=" '$arg'" ;;
		*) shown+=" $arg" ;;
		esac
	done
	printf '   $ curl -x http://%s%s %s\n' "$proxy_addr" "$shown" "$url"
	env -u NO_PROXY -u no_proxy curl -sS -x "http://$proxy_addr" "$@" \
		-D "$work/$name.headers" -o "$work/$name.body" -w '%{http_code}' "$url" \
		>"$work/$name.status" || true
}

status() { cat "$work/$1.status"; }
body_has() { grep -qF -- "$2" "$work/$1.body"; }
header_value() {
	grep -i "^$2:" "$work/$1.headers" | head -n 1 | cut -d: -f2- | tr -d '\r' |
		sed 's/^ *//'
}

step "1. Routing by header: X-Mtls-Client-Cert: globex"
send globex -H "X-Mtls-Client-Cert: globex"
echo "   The proxy presented globex's certificate and the echo server saw it."
if [ "$(status globex)" = 200 ] && body_has globex "CN=globex-flows,O=Globex"; then
	pass "status 200, client_subject CN=globex-flows,O=Globex"
else
	fail "expected 200 with subject CN=globex-flows (got $(status globex))"
fi
if body_has globex "X-Mtls-Client-Cert"; then
	fail "the routing header reached the upstream"
else
	pass "the X-Mtls-Client-Cert header was removed before the request went upstream"
fi

step "2. Routing by rule: [[route]] host = \"127.0.0.1\" -> acme"
send route
echo "   No header, so the first matching route chose acme's certificate."
if [ "$(status route)" = 200 ] && body_has route "CN=acme-webhooks,O=Acme Corp"; then
	pass "status 200, client_subject CN=acme-webhooks,O=Acme Corp"
else
	fail "expected 200 with subject CN=acme-webhooks (got $(status route))"
fi
if body_has route '"chain_length": 3'; then
	pass "the chain from ca_file was sent after the leaf (chain_length 3)"
else
	fail "expected chain_length 3 (leaf, intermediate, root)"
fi

step "3. SNI override: server_name = \"internal.demo.test\""
echo "   The URL says 127.0.0.1, but the proxy asked for internal.demo.test in the"
echo "   handshake and verified the server's certificate against that name."
if body_has route '"sni": "internal.demo.test"'; then
	pass "the echo server was asked for SNI internal.demo.test"
else
	fail "expected the echo server to report sni internal.demo.test"
fi

step "4. A disabled certificate: X-Mtls-Client-Cert: retired"
send retired -H "X-Mtls-Client-Cert: retired"
code=$(header_value retired X-Mtls-Proxy-Error)
warning=$(grep -i '^x-mtls-proxy-warning:' "$work/retired.headers" | tr -d '\r' || true)
echo "   The request went without a client certificate, and the server refused it."
echo "   status $(status retired), X-Mtls-Proxy-Error: ${code:-none}"
echo "   ${warning:-no warning header}"
if [ "$(status retired)" = 502 ] && [ "$code" = client_certificate_required ]; then
	pass "refused by the server: 502 client_certificate_required"
else
	fail "expected 502 client_certificate_required for a request without a certificate"
fi
if [ -n "$warning" ] && grep -qi retired <<<"$warning"; then
	pass "the response carries a warning naming the disabled certificate"
else
	fail "expected an X-Mtls-Proxy-Warning header naming the disabled certificate"
fi

step "5. An error: X-Mtls-Client-Cert: acme-no-sni (server_name left unset)"
send nosni -H "X-Mtls-Client-Cert: acme-no-sni"
code=$(header_value nosni X-Mtls-Proxy-Error)
echo "   Without the override the proxy checked the server's certificate against"
echo "   127.0.0.1, which it does not name:"
echo "   status $(status nosni), X-Mtls-Proxy-Error: ${code:-none}"
sed 's/^/   /' "$work/nosni.body"
echo
want="Hostname does not match the certificate. Check the server name (SNI) configuration."
if [ "$(status nosni)" = 502 ] && [ "$code" = hostname_mismatch ] && body_has nosni "$want"; then
	pass "502 hostname_mismatch: $want"
else
	fail "expected 502 with hostname_mismatch and its message"
fi

echo
if [ "$failed" -gt 0 ]; then
	echo "demo: $failed check(s) failed; the proxy's log follows." >&2
	cat "$work/proxy.log" >&2
	exit 1
fi
echo "demo: all checks passed."
