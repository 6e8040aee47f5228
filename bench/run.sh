#!/usr/bin/env bash
# Measures mtlsproxy next to nginx and HAProxy doing the same job on loopback: plain
# HTTP from wrk in, mutual TLS out to one nginx upstream that requires a client
# certificate. Each proxy presents the same client certificate and verifies the upstream.
#
# Scenarios: keep-alive GET; the client closes every connection; the upstream closes every
# connection; 1 MiB POST with a 1 MiB response. Runs alternate between the proxies, and
# the medians of REPEAT runs are printed and written to bench/results.md.
#
# Usage: bash bench/run.sh        (as root: it installs nginx, haproxy and wrk if missing)
#
# Environment (defaults in brackets):
#   QUICK=1            3s runs, one repetition, for a check in under three minutes
#   DURATION [10s]     length of each measured run (wrk -d)
#   WARMUP [3s]        unmeasured run just before each measured one
#   REPEAT [3]         measured runs per scenario and proxy
#   CONNS [32]         connections for the small-body scenarios; BIG_CONNS [8] for 1 MiB
#   PROXIES ["mtlsproxy nginx haproxy"]   which proxies to measure
#   SCENARIOS          which scenarios to run (default: all four)
#   MTLSPROXY_BIN      a prebuilt binary to measure instead of building one
#   LOAD_CPU [0]       CPU for wrk and the upstream; PROXY_CPU [1] for the proxy
#   NICE [0]           nice value for everything measured (-10 holds off other work a bit)
#   RESULTS [bench/results.md]   where the Markdown report goes; a partial run
#                      (QUICK, SCENARIOS or PROXIES set) goes to bench/results-partial.md
#                      instead, so that it does not replace the full tables
#   SETTLE [90]        seconds to wait at most for the load average to drop first
#   KEEP=1             keep the work folder (configs, logs, raw runs) and print its path
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

if [[ ${QUICK:-0} == 1 ]]; then
	DURATION=${DURATION:-3s} WARMUP=${WARMUP:-1s} REPEAT=${REPEAT:-1}
fi
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
REPEAT=${REPEAT:-3}
CONNS=${CONNS:-32}
BIG_CONNS=${BIG_CONNS:-8}
[[ -n ${PROXIES:-} ]] && PROXIES_SET=1
PROXIES=${PROXIES:-mtlsproxy nginx haproxy}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
if [[ ${QUICK:-0} == 1 || -n ${SCENARIOS:-} || -n ${PROXIES_SET:-} ]]; then
	RESULTS=${RESULTS:-$here/results-partial.md}
fi
RESULTS=${RESULTS:-$here/results.md}
SETTLE=${SETTLE:-90}
NICE=${NICE:-0}

read -ra scenarios <<<"${SCENARIOS:-keepalive client-close upstream-close post-1mib}"
declare -A title=(
	[keepalive]="keep-alive, GET /small"
	[client-close]="client closes every connection, GET /small"
	[upstream-close]="upstream closes every connection, GET /close"
	[post-1mib]="1 MiB POST body, 1 MiB response"
)
big_bytes=1048576

tracked=()
work=""
up_port="" close_port=""
failed_proxies=()

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# track PID NAME: remembers a started process for cleanup. NAME is what
# /proc/PID/comm must say, so that a number reused by the system is never signalled.
track() { tracked+=("$1:$2"); }

# ours PID:NAME: true while that process is still the one that was started.
ours() {
	[[ $(cat /proc/"${1%%:*}"/comm 2>/dev/null) == "${1#*:}" ]]
}

# with_children: the tracked processes followed by their children (nginx workers, wrk),
# so that none outlives a parent that has to be killed.
with_children() {
	local entry child
	for entry in "${tracked[@]}"; do
		echo "$entry"
		ours "$entry" || continue
		tree "${entry%%:*}" | tail -n +2 | while read -r child; do
			echo "$child:$(cat /proc/"$child"/comm 2>/dev/null)"
		done
	done
}

cleanup() {
	local rc=$? entry i
	local -a all
	trap - EXIT INT TERM
	mapfile -t all < <(with_children)
	for entry in "${all[@]}"; do
		if ours "$entry"; then kill -TERM "${entry%%:*}" 2>/dev/null || true; fi
	done
	for entry in "${all[@]}"; do
		for i in $(seq 1 50); do
			ours "$entry" || break
			sleep 0.1
		done
		if ours "$entry"; then kill -KILL "${entry%%:*}" 2>/dev/null || true; fi
	done
	if [[ -n $work && ${KEEP:-0} == 1 ]]; then
		log "work folder kept: $work"
	elif [[ -n $work ]]; then
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools and machine

ensure_tools() {
	local missing=0 tool
	for tool in nginx haproxy wrk openssl; do
		command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || missing=1
	done
	if ((missing)); then
		log "installing nginx, haproxy, wrk and openssl"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y nginx haproxy wrk openssl
	fi
	PATH=$PATH:/usr/sbin:/sbin
	command -v taskset >/dev/null || die "taskset (util-linux) is missing"
	local cpus
	cpus=$(nproc)
	if ((cpus < 2)) && ((LOAD_CPU != PROXY_CPU)); then
		log "only $cpus CPU: load and proxy share CPU 0"
		LOAD_CPU=0 PROXY_CPU=0
	fi
	on_load_cpu=(nice -n "$NICE" taskset -c "$LOAD_CPU")
	on_proxy_cpu=(nice -n "$NICE" taskset -c "$PROXY_CPU")
}

# seconds DURATION: a wrk duration (10s, 2m) in seconds.
seconds() {
	case $1 in
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}

load_average() { cut -d' ' -f1-3 /proc/loadavg; }

# busy LOADAVG: true when other work kept more than half of the CPUs busy.
busy() {
	awk -v l="${1%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'
}

cpu_model() {
	sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1
}

# ---------------------------------------------------------------- ports and processes

declare -A taken_ports=()

port_in_use() {
	local hex
	hex=$(printf ':%04X ' "$1")
	grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port VAR: sets VAR to a port below the ephemeral range that nothing uses.
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		[[ -n ${taken_ports[$p]:-} ]] && continue
		port_in_use "$p" && continue
		taken_ports[$p]=1
		printf -v "$1" '%s' "$p"
		return 0
	done
	die "no free port found"
}

# wait_listen NAME PID PORT LOGFILE: waits up to ten seconds for PORT to accept.
wait_listen() {
	local i
	for i in $(seq 1 100); do
		if ! kill -0 "$2" 2>/dev/null; then
			log "$1 exited during start-up; its log:"
			tail -n 20 "$4" >&2 || true
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	log "$1 is not listening on port $3 after ten seconds; its log:"
	tail -n 20 "$4" >&2 || true
	return 1
}

# tree PID: the process and its children (nginx master and workers).
tree() {
	echo "$1"
	cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d' || true
}

# reset_peak PIDS...: restarts the kernel's peak-RSS counter (VmHWM) of each process.
reset_peak() {
	local pid
	for pid in "$@"; do
		echo 5 >/proc/"$pid"/clear_refs 2>/dev/null || peak_is_lifetime=1
	done
}
peak_is_lifetime=0

# peak_kb PIDS...: the sum of VmHWM over the processes.
peak_kb() {
	local pid
	for pid in "$@"; do
		sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/"$pid"/status 2>/dev/null
	done | awk '{s += $1} END {print s + 0}'
}

# cpu_ticks PIDS...: user plus system time of the processes, in clock ticks.
cpu_ticks() {
	local pid
	for pid in "$@"; do
		# Fields after the command name, which is in parentheses: utime is the 12th.
		sed 's/^.*) //' /proc/"$pid"/stat 2>/dev/null | awk '{print $12 + $13}'
	done | awk '{s += $1} END {print s + 0}'
}

# ---------------------------------------------------------------- PKI

pki_key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" \
		2>/dev/null
}

# pki_ca NAME SUBJECT: a self-signed certificate authority.
pki_ca() {
	pki_key "$1"
	openssl req -x509 -new -key "$pki/$1.key" -subj "$2" -days 7 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" -out "$pki/$1.pem" 2>/dev/null
}

# pki_leaf NAME SUBJECT ISSUER EXTENSIONS: a certificate signed by ISSUER.
pki_leaf() {
	pki_key "$1"
	openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
	printf '%b\n' "$4" >"$pki/$1.ext"
	openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$3.pem" -CAkey "$pki/$3.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days 7 -sha256 -extfile "$pki/$1.ext" \
		-out "$pki/$1.pem" 2>/dev/null
}

make_pki() {
	local leaf='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature'
	pki_ca server-ca "/CN=mtlsproxy bench server CA"
	pki_ca client-ca "/CN=mtlsproxy bench client CA"
	pki_leaf server "/CN=upstream.bench.test" server-ca \
		"$leaf\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:upstream.bench.test,IP:127.0.0.1"
	pki_leaf client "/CN=bench-client" client-ca "$leaf\nextendedKeyUsage=clientAuth"
	cat "$pki/client.pem" "$pki/client.key" >"$pki/client-bundle.pem"
}

# ---------------------------------------------------------------- upstream

# The bodies carry a per-run nonce and the subject of the client certificate the upstream
# verified, so a 200 with the expected body proves the request crossed the proxy over mTLS.
# nginx_prelude DIR: the start of an nginx.conf for one worker in the foreground,
# with its pid, error log and temporary files in DIR, up to the inside of http {}.
nginx_prelude() {
	local d=$1
	cat <<-EOF
		worker_processes 1;
		daemon off;
		pid $d/nginx.pid;
		error_log $d/error.log error;
		events { worker_connections 8192; }
		http {
		    access_log off;
		    client_body_temp_path $d/tmp/body;
		    proxy_temp_path $d/tmp/proxy;
		    fastcgi_temp_path $d/tmp/fastcgi;
		    uwsgi_temp_path $d/tmp/uwsgi;
		    scgi_temp_path $d/tmp/scgi;
	EOF
}

write_upstream() {
	local d=$work/upstream pad=0123456789abcdef01234567
	mkdir -p "$d/www" "$d/tmp"
	{
		printf 'big %s\n' "$nonce"
		head -c $((big_bytes - 5 - ${#nonce})) /dev/zero | tr '\0' 'b'
	} >"$d/www/big"
	cat >"$d/nginx.conf" <<-EOF
		$(nginx_prelude "$d")
		    default_type text/plain;
		    sendfile on;

		    ssl_certificate $pki/server.pem;
		    ssl_certificate_key $pki/server.key;
		    ssl_client_certificate $pki/client-ca.pem;
		    ssl_verify_client on;
		    ssl_verify_depth 1;
		    ssl_protocols TLSv1.3;
		    ssl_session_cache shared:upstream:10m;
		    ssl_session_timeout 1h;
		    ssl_session_tickets on;

		    server {
		        listen 127.0.0.1:$up_port ssl;
		        server_name upstream.bench.test;
		        keepalive_timeout 300s;
		        keepalive_requests 1000000;
		        root $d/www;

		        location = /small {
		            return 200 "small $nonce for \$ssl_client_s_dn upstream_request=\$connection_requests; $pad\n";
		        }
		        # The mirror reads the whole request body before anything is answered; a
		        # reply sent while the body is still arriving makes proxies drop the client
		        # connection. The static module then refuses POST with 405, which becomes a
		        # GET of the same file.
		        location = /big {
		            client_max_body_size 2m;
		            client_body_buffer_size 2m;
		            mirror /sink;
		            mirror_request_body on;
		            error_page 405 =200 \$uri;
		        }
		        location = /sink {
		            internal;
		            return 204;
		        }
		    }

		    server {
		        listen 127.0.0.1:$close_port ssl;
		        server_name upstream.bench.test;
		        keepalive_timeout 0;
		        location = /close {
		            return 200 "close $nonce for \$ssl_client_s_dn resumed=\$ssl_session_reused; $pad\n";
		        }
		    }
		}
	EOF
}

start_upstream() {
	local d=$work/upstream
	"${on_load_cpu[@]}" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" \
		>"$d/stdout.log" 2>&1 &
	track "$!" nginx
	wait_listen "upstream nginx" "$!" "$up_port" "$d/error.log" || exit 1
	wait_listen "upstream nginx" "$!" "$close_port" "$d/error.log" || exit 1
}

# ---------------------------------------------------------------- proxies under test

write_mtlsproxy() {
	local d=$work/mtlsproxy
	mkdir -p "$d"
	cp "$pki/client.pem" "$pki/client.key" "$pki/server-ca.pem" "$d/"
	cat >"$d/config.toml" <<-EOF
		[proxy]
		listen = "127.0.0.1:${port[mtlsproxy]}"

		[egress]
		deny_private = false

		[admin]
		disabled = true

		[log]
		level = "error"

		[[certificate]]
		name = "bench"
		cert_file = "client.pem"
		key_file = "client.key"
		server_ca_file = "server-ca.pem"
		server_name = "upstream.bench.test"

		[[route]]
		host = "127.0.0.1"
		port = $up_port
		certificate = "bench"
		tls = true

		[[route]]
		host = "127.0.0.1"
		port = $close_port
		certificate = "bench"
		tls = true
	EOF
}

# One worker process: the proxy gets one CPU, and nginx's own advice is a worker per
# core. With "auto" nginx would start two workers that then share that one CPU.
# Bodies are relayed as they arrive, as HAProxy and mtlsproxy do, instead of being
# spooled to temporary files, which is what nginx does by default with 1 MiB bodies.
write_nginx() {
	local d=$work/nginx
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<-EOF
		$(nginx_prelude "$d")

		    keepalive_timeout 300s;
		    keepalive_requests 1000000;
		    client_max_body_size 2m;

		    upstream up_keepalive {
		        server 127.0.0.1:$up_port;
		        keepalive 64;
		        keepalive_requests 1000000;
		        keepalive_timeout 300s;
		    }
		    upstream up_close {
		        server 127.0.0.1:$close_port;
		        keepalive 64;
		    }

		    server {
		        listen 127.0.0.1:${port[nginx]};

		        proxy_http_version 1.1;
		        proxy_set_header Connection "";
		        proxy_request_buffering off;
		        proxy_buffering off;
		        proxy_buffer_size 16k;
		        proxy_buffers 8 16k;
		        proxy_busy_buffers_size 32k;

		        proxy_ssl_certificate $pki/client.pem;
		        proxy_ssl_certificate_key $pki/client.key;
		        proxy_ssl_trusted_certificate $pki/server-ca.pem;
		        proxy_ssl_verify on;
		        proxy_ssl_verify_depth 2;
		        proxy_ssl_name upstream.bench.test;
		        proxy_ssl_server_name on;
		        proxy_ssl_session_reuse on;
		        proxy_ssl_protocols TLSv1.2 TLSv1.3;

		        location / {
		            proxy_pass https://up_keepalive;
		        }
		        location = /close {
		            proxy_pass https://up_close;
		        }
		    }
		}
	EOF
}

# One thread, for the same reason as nginx's single worker.
write_haproxy() {
	local d=$work/haproxy
	local tls="ssl crt $pki/client-bundle.pem ca-file $pki/server-ca.pem verify required"
	tls="$tls sni str(upstream.bench.test) verifyhost upstream.bench.test"
	mkdir -p "$d"
	cat >"$d/haproxy.cfg" <<-EOF
		global
		    nbthread 1
		    maxconn 4096

		defaults
		    mode http
		    timeout connect 5s
		    timeout client 60s
		    timeout server 60s
		    timeout http-keep-alive 300s

		frontend bench
		    bind 127.0.0.1:${port[haproxy]}
		    use_backend upstream_close if { path /close }
		    default_backend upstream_keepalive

		backend upstream_keepalive
		    http-reuse always
		    server up 127.0.0.1:$up_port $tls

		backend upstream_close
		    http-reuse always
		    server up 127.0.0.1:$close_port $tls
	EOF
}

build_mtlsproxy() {
	if [[ -n ${MTLSPROXY_BIN:-} ]]; then
		mtlsproxy_bin=$MTLSPROXY_BIN
		return 0
	fi
	command -v go >/dev/null || die "go is needed to build mtlsproxy (or set MTLSPROXY_BIN)"
	log "building mtlsproxy"
	mtlsproxy_bin=$work/bin/mtlsproxy
	(cd "$root" && go build -o "$mtlsproxy_bin" ./cmd/mtlsproxy) ||
		die "mtlsproxy does not build"
}

declare -A port=() proxy_pid=() counted=()

# start_proxy NAME: starts it on PROXY_CPU and waits until it listens.
start_proxy() {
	local name=$1 d=$work/$1
	case $name in
	mtlsproxy)
		# Without the proxy variables of this shell, which would loop the proxy into itself.
		env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy -u ALL_PROXY \
			"${on_proxy_cpu[@]}" "$mtlsproxy_bin" serve -config "$d/config.toml" \
			>"$d/proxy.log" 2>&1 &
		;;
	nginx)
		"${on_proxy_cpu[@]}" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" \
			>"$d/proxy.log" 2>&1 &
		;;
	haproxy)
		"${on_proxy_cpu[@]}" haproxy -db -f "$d/haproxy.cfg" >"$d/proxy.log" 2>&1 &
		;;
	*) die "unknown proxy $name" ;;
	esac
	proxy_pid[$name]=$!
	# The kernel names a process after its binary, cut to 15 characters; a binary
	# given in MTLSPROXY_BIN may not be called mtlsproxy.
	local comm=$name
	[[ $name == mtlsproxy ]] && comm=$(basename "$mtlsproxy_bin" | cut -c1-15)
	track "$!" "$comm"
	wait_listen "$name" "$!" "${port[$name]}" "$d/proxy.log"
}

# ---------------------------------------------------------------- load

# wrk_args PROXY SCENARIO: sets the arrays `args` and `envs` for one wrk run.
wrk_args() {
	local proxy=$1 scenario=$2 path=/small dest=$up_port conns=$CONNS
	args=()
	envs=()
	case $scenario in
	client-close) args+=(-H "Connection: close") ;;
	upstream-close) path=/close dest=$close_port ;;
	post-1mib)
		path=/big conns=$BIG_CONNS
		envs+=(BENCH_METHOD=POST "BENCH_BODY_BYTES=$big_bytes")
		;;
	esac
	args=(-t1 -c"$conns" --timeout 10s -s "$here/wrk.lua" "${args[@]}")
	if [[ $proxy == mtlsproxy ]]; then
		envs+=("BENCH_URI=http://127.0.0.1:$dest$path")
		args+=("http://127.0.0.1:${port[$proxy]}/")
	else
		args+=("http://127.0.0.1:${port[$proxy]}$path")
	fi
}

# What the check run counts, as the upstream reports it in its bodies: whether the proxy
# reuses upstream connections, and whether it resumes TLS sessions when it cannot.
declare -A count_text=(
	[keepalive]="upstream_request=1;"
	[client-close]="upstream_request=1;"
	[upstream-close]="resumed=r"
)
declare -A count_label=(
	[keepalive]="requests that opened an upstream connection"
	[client-close]="requests that opened an upstream connection"
	[upstream-close]="upstream connections that resumed a TLS session"
)

# set_checks SCENARIO: sets the array `checks`, the environment that makes wrk.lua check
# each response: a 200 from the right upstream server, for the bench client certificate.
set_checks() {
	case $1 in
	upstream-close) checks=("BENCH_EXPECT=close $nonce for CN=bench-client") ;;
	post-1mib) checks=("BENCH_EXPECT=big $nonce" "BENCH_EXPECT_LEN=$big_bytes") ;;
	*) checks=("BENCH_EXPECT=small $nonce for CN=bench-client") ;;
	esac
	[[ -z ${count_text[$1]:-} ]] || checks+=("BENCH_COUNT=${count_text[$1]}")
}

# run_wrk OUTFILE DURATION ENV... -- ARGS...: one bounded wrk run on LOAD_CPU.
run_wrk() {
	local out=$1 duration=$2 limit
	shift 2
	local -a env_list=()
	while [[ $1 != -- ]]; do
		env_list+=("$1")
		shift
	done
	shift
	limit=$(($(seconds "$duration") + 30))
	env "${env_list[@]}" timeout "$limit" "${on_load_cpu[@]}" \
		wrk -d "$duration" "$@" >"$out" 2>&1 &
	track "$!" timeout
	# Waiting in the background lets INT and TERM reach the cleanup at once.
	wait "$!"
	unset 'tracked[-1]'
	tracked=("${tracked[@]}")
}

# field FILE KEY: the value of KEY in the BENCH line of a wrk output.
field() {
	sed -n 's/^BENCH .*[[:space:]]'"$2"'=\([^[:space:]]*\).*/\1/p' "$1" | head -n 1
}

# verify PROXY SCENARIO: a short run that checks every response; false on any mismatch.
verify() {
	local proxy=$1 scenario=$2 out=$work/runs/verify-$1-$2.txt checked bad
	local -a checks
	wrk_args "$proxy" "$scenario"
	set_checks "$scenario"
	run_wrk "$out" 1s "${envs[@]}" "${checks[@]}" -- "${args[@]}" || true
	checked=$(field "$out" checked)
	bad=$(field "$out" bad)
	if [[ -z $checked || $checked == 0 || $bad != 0 ]]; then
		log "$proxy failed the $scenario check (checked=${checked:-none} bad=${bad:-none})"
		grep '^BENCH_SAMPLE' "$out" >&2 || tail -n 5 "$out" >&2
		tail -n 5 "$work/$proxy/proxy.log" "$work/$proxy/error.log" 2>/dev/null >&2 || true
		return 1
	fi
	if [[ -n ${count_text[$scenario]:-} ]]; then
		counted[$scenario/$proxy]=$(awk -v c="$(field "$out" counted)" -v n="$checked" \
			'BEGIN { printf "%.1f%%", c / n * 100 }')
	fi
}

# measure PROXY SCENARIO REP: warm-up, then one measured run; appends a row to runs.tsv.
measure() {
	local proxy=$1 scenario=$2 rep=$3 out=$work/runs/$2-$1-$3.txt
	local -a procs
	local ticks0 ticks1 us rps p50 p99 errors rss cpu
	wrk_args "$proxy" "$scenario"
	run_wrk "$work/runs/warmup.txt" "$WARMUP" "${envs[@]}" -- "${args[@]}" || true

	mapfile -t procs < <(tree "${proxy_pid[$proxy]}")
	reset_peak "${procs[@]}"
	ticks0=$(cpu_ticks "${procs[@]}")
	run_wrk "$out" "$DURATION" "${envs[@]}" -- "${args[@]}" || true
	ticks1=$(cpu_ticks "${procs[@]}")
	rss=$(peak_kb "${procs[@]}")

	us=$(field "$out" duration_us)
	if [[ -z $us ]]; then
		log "wrk produced no result for $proxy $scenario; its output:"
		tail -n 5 "$out" >&2
		return 0
	fi
	rps=$(field "$out" rps) p50=$(field "$out" p50_us) p99=$(field "$out" p99_us)
	errors=$(awk -v line="$(grep '^BENCH ' "$out")" 'BEGIN {
		n = split(line, kv, /[ =]/)
		for (i = 2; i < n; i += 2)
			if (kv[i] ~ /^(connect|read|write|status|timeout)$/) s += kv[i + 1]
		print s + 0 }')
	cpu=$(awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v us="$us" \
		'BEGIN { printf "%.0f", t / hz / (us / 1e6) * 100 }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$proxy" "$rep" "$rps" \
		"$p50" "$p99" "$rss" "$cpu" "$errors" >>"$work/runs.tsv"
	log "$(printf '%-15s %-10s run %d: %8.0f req/s  p99 %6.2f ms  errors %s' \
		"$scenario" "$proxy" "$rep" "$rps" "$(awk -v v="$p99" 'BEGIN{print v/1000}')" "$errors")"
}

# rotated REP: the proxies in the order of repetition REP (A B C, B C A, C A B, ...).
rotated() {
	local -a list
	read -r -a list <<<"$1"
	local n=${#list[@]} i
	for ((i = 0; i < n; i++)); do
		echo "${list[$(((i + $2) % n))]}"
	done
}

run_scenario() {
	local scenario=$1 proxy rep
	local -a active=()
	for proxy in $live_proxies; do
		if verify "$proxy" "$scenario"; then
			active+=("$proxy")
		else
			failed_proxies+=("$proxy/$scenario")
		fi
	done
	((${#active[@]})) || return 0
	for ((rep = 1; rep <= REPEAT; rep++)); do
		for proxy in $(rotated "${active[*]}" $((rep - 1))); do
			measure "$proxy" "$scenario" "$rep"
		done
	done
}

# ---------------------------------------------------------------- report

median() {
	sort -g | awk '{ v[NR] = $1 }
		END {
			if (NR == 0) { print ""; exit }
			if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}

# column_of SCENARIO PROXY N: the Nth column of runs.tsv for that scenario and proxy.
column_of() {
	awk -F'\t' -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { print $c }' \
		"$work/runs.tsv"
}

# summary SCENARIO PROXY: "runs rps min max p50ms p99ms rssMB cpu errors", or nothing.
summary() {
	local runs
	runs=$(column_of "$1" "$2" 4 | wc -l)
	((runs)) || return 0
	printf '%s %s %s %s %s %s %s %s %s\n' "$runs" \
		"$(column_of "$1" "$2" 4 | median)" \
		"$(column_of "$1" "$2" 4 | sort -g | head -n 1)" \
		"$(column_of "$1" "$2" 4 | sort -g | tail -n 1)" \
		"$(column_of "$1" "$2" 5 | median)" \
		"$(column_of "$1" "$2" 6 | median)" \
		"$(column_of "$1" "$2" 7 | median)" \
		"$(column_of "$1" "$2" 8 | median)" \
		"$(column_of "$1" "$2" 9 | awk '{ s += $1 } END { print s + 0 }')"
}

# ratio A B: A/B with two decimals, or "n/a".
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# report FORMAT: the tables, as text (FORMAT=text) or Markdown (FORMAT=md).
report() {
	local fmt=$1 scenario proxy s other bullet=""
	local -a fields
	local -A med_rps=() med_p99=()
	[[ $fmt == md ]] && bullet="- "
	for scenario in "${scenarios[@]}"; do
		if [[ $fmt == md ]]; then
			printf '\n### %s\n\n' "${title[$scenario]}"
			printf '| proxy | req/s | req/s range | p50 ms | p99 ms | peak RSS MB | proxy CPU'
			printf ' | errors |\n'
			printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
		else
			printf '\n== %s\n' "${title[$scenario]}"
			printf '%-10s %9s %17s %8s %8s %11s %9s %7s\n' proxy req/s "req/s range" \
				"p50 ms" "p99 ms" "peak RSS MB" "proxy CPU" errors
		fi
		for proxy in $PROXIES; do
			s=$(summary "$scenario" "$proxy")
			if [[ -z $s ]]; then
				row_missing "$fmt" "$proxy"
				continue
			fi
			read -r -a fields <<<"$s"
			row "$fmt" "$proxy" "${fields[@]}"
			med_rps[$proxy]=${fields[1]} med_p99[$proxy]=${fields[5]}
		done
		[[ $fmt == md ]] && echo
		for other in nginx haproxy; do
			[[ " $PROXIES " == *" mtlsproxy "* && " $PROXIES " == *" $other "* ]] || continue
			printf '%smtlsproxy/%s: req/s %s, p99 %s\n' "$bullet" "$other" \
				"$(ratio "${med_rps[mtlsproxy]:-}" "${med_rps[$other]:-}")" \
				"$(ratio "${med_p99[mtlsproxy]:-}" "${med_p99[$other]:-}")"
		done
		count_line "$scenario" "$bullet"
		med_rps=() med_p99=()
	done
}

# count_line SCENARIO PREFIX: what the check run of SCENARIO counted, for each proxy.
count_line() {
	local proxy line=""
	for proxy in $PROXIES; do
		[[ -z ${counted[$1/$proxy]:-} ]] || line+="${line:+, }$proxy ${counted[$1/$proxy]}"
	done
	[[ -z $line ]] || printf '%s%s (check run): %s\n' "$2" "${count_label[$1]}" "$line"
}

# row FORMAT PROXY RUNS RPS MIN MAX P50US P99US RSSKB CPU ERRORS
row() {
	local fmt=$1 proxy=$2 runs=$3 rps=$4 min=$5 max=$6 p50=$7 p99=$8 rss=$9 cpu=${10}
	local errors=${11} flag=""
	((errors)) && flag=" (!)"
	awk -v fmt="$fmt" -v proxy="$proxy" -v rps="$rps" -v min="$min" -v max="$max" \
		-v p50="$p50" -v p99="$p99" -v rss="$rss" -v cpu="$cpu" -v err="$errors$flag" '
		BEGIN {
			range = sprintf("%.0f-%.0f", min, max)
			if (fmt == "md")
				printf "| %s | %.0f | %s | %.2f | %.2f | %.1f | %.0f%% | %s |\n",
					proxy, rps, range, p50 / 1000, p99 / 1000, rss / 1024, cpu, err
			else
				printf "%-10s %9.0f %17s %8.2f %8.2f %11.1f %8.0f%% %7s\n",
					proxy, rps, range, p50 / 1000, p99 / 1000, rss / 1024, cpu, err
		}'
}

row_missing() {
	if [[ $1 == md ]]; then
		printf '| %s | failed | | | | | | |\n' "$2"
	else
		printf '%-10s %9s\n' "$2" failed
	fi
}

versions() {
	local v=""
	v+="nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), "
	v+="HAProxy $(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p'), "
	v+="$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}'), "
	v+="$(openssl version | awk '{print $1, $2}')"
	if [[ " $PROXIES " == *" mtlsproxy "* ]]; then
		local mv
		mv=$("$mtlsproxy_bin" version 2>/dev/null | head -n 1 || true)
		v+=", mtlsproxy ${mv#mtlsproxy }"
	fi
	echo "$v"
}

write_markdown() {
	local peak="peak RSS is the highest resident set size during the measured run"
	((peak_is_lifetime)) && peak="peak RSS is the highest resident set size since start"
	{
		printf '# Benchmark: mtlsproxy, nginx and HAProxy as mTLS egress proxies\n\n'
		printf -- '- Date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
		printf -- '- Machine: %s CPUs (%s), Linux %s; load average %s at the start\n' \
			"$(nproc)" "$(cpu_model)" "$(uname -r)" "$load_before"
		if busy "$load_before"; then
			printf -- '- Warning: other work was running when the benchmark started; the'
			printf ' numbers are distorted by it\n'
		fi
		printf -- '- Software: %s\n' "$(versions)"
		printf -- '- Load: wrk -t1, %s connections (%s for 1 MiB), %s per run after a %s' \
			"$CONNS" "$BIG_CONNS" "$DURATION" "$WARMUP"
		printf ' warm-up; median of %s run(s), proxies alternating between runs\n' "$REPEAT"
		printf -- '- Pinning: proxy on CPU %s; wrk and the upstream nginx on CPU %s;' \
			"$PROXY_CPU" "$LOAD_CPU"
		printf ' nginx with 1 worker, HAProxy with 1 thread, Go with the one CPU it may use\n'
		printf -- '- Upstream: nginx, TLS 1.3, ECDSA P-256, client certificate required,'
		printf ' session cache and tickets on; every proxy verifies it and presents the same'
		printf ' client certificate\n'
		printf -- '- Columns: %s, summed over all processes of the proxy; proxy CPU is' "$peak"
		printf ' its CPU time over wall time (100%% is the whole CPU); errors are socket errors,'
		printf ' timeouts and non-2xx responses summed over the runs, (!) marks any\n'
		printf -- '- Ratios are of the medians; above 1 for req/s and below 1 for p99 favour'
		printf ' mtlsproxy\n'
		report md
		if ((${#failed_proxies[@]})); then
			printf '\nNot measured (did not start, or failed the response check): %s\n' \
				"${failed_proxies[*]}"
		fi
	} >"$RESULTS"
}

# ---------------------------------------------------------------- main

main() {
	ensure_tools
	load_before=$(load_average)
	if busy "$load_before" && ((SETTLE > 0)); then
		log "load average $load_before on $(nproc) CPUs; waiting up to ${SETTLE}s for it to drop"
		local waited=0
		while busy "$load_before" && ((waited < SETTLE)); do
			sleep 5
			waited=$((waited + 5))
			load_before=$(load_average)
		done
	fi
	if busy "$load_before"; then
		log "warning: load average $load_before on $(nproc) CPUs before starting;" \
			"other work will distort the results"
	fi
	work=$(mktemp -d "${TMPDIR:-/tmp}/mtlsproxy-bench.XXXXXX")
	# nginx workers run as an unprivileged user and must read the files served.
	chmod 755 "$work"
	pki=$work/pki
	mkdir -p "$pki" "$work/runs" "$work/bin"
	: >"$work/runs.tsv"
	nonce=$(openssl rand -hex 6)

	[[ " $PROXIES " == *" mtlsproxy "* ]] && build_mtlsproxy
	log "making a PKI and starting the upstream"
	make_pki
	free_port up_port
	free_port close_port
	write_upstream
	start_upstream

	live_proxies=""
	local proxy
	for proxy in $PROXIES; do
		free_port "port[$proxy]"
		"write_$proxy"
		if start_proxy "$proxy"; then
			live_proxies+=" $proxy"
		else
			failed_proxies+=("$proxy/start")
		fi
	done

	local estimate n
	n=$(wc -w <<<"$live_proxies")
	estimate=$((($(seconds "$DURATION") + $(seconds "$WARMUP") + 1) * REPEAT * ${#scenarios[@]} * n +
		4 * ${#scenarios[@]} * n))
	if ((estimate < 120)); then
		log "measuring ${live_proxies# }; about ${estimate}s"
	else
		log "measuring ${live_proxies# }; about $((estimate / 60 + 1)) minutes"
	fi
	for scenario in "${scenarios[@]}"; do
		run_scenario "$scenario"
	done

	report text
	write_markdown
	log "wrote $RESULTS"
	if ((${#failed_proxies[@]})); then
		log "not measured: ${failed_proxies[*]}"
		exit 1
	fi
}

main "$@"
