#!/bin/bash
# Usage: samba-ad-setup.sh DIR [389 [636]]   (as root; installs Debian samba-ad-dc samba-ad-provision ldap-utils if missing)
#        samba-ad-setup.sh --install   (only install the packages)
# A private Samba Active Directory DC for realm EXAMPLE.TEST (domain EXAMPLE, DC=example,DC=test) on 127.0.0.1 only:
# provisioned into DIR/samba with its own smb.conf, CA and log; not the system service. Only the LDAP service runs.
# Its LDAP ports are fixed in Samba's source (ldap_server.c: 389, 636, global catalog 3268, 3269; no smb.conf option),
# so the port arguments must be 389 and 636; it refuses to start if any of the four is taken on 127.0.0.1.
# Users alice bob carol (enabled) and dave (disabled), bind account keyless (OU=Services), groups developers, admins,
# platform (platform is a member of admins). Simple binds need TLS (Samba's default, as on a hardened AD);
# AD_PLAIN_BIND=1 sets "ldap server require strong auth = no" so simple binds work on plain 389 too.
# Stop: samba-ad-stop.sh DIR.
set -euo pipefail
# --install: only install the Debian packages (scripts/test does it once, before tests start partners in parallel).
INSTALL_ONLY=; if [ "${1:-}" = --install ]; then INSTALL_ONLY=1; set -- /tmp/keyless-partner-install 389 636; fi
D=$(realpath -m "${1:?usage: samba-ad-setup.sh DIR [389 [636]]}"); P=${2:-389}; PS=${3:-636}; T0=$(date +%s%N)
export TDB_NO_FSYNC=1   # a throwaway DC: skip the ~600 fsyncs of provisioning (as Samba's own selftest does)
S=$D/samba; REALM=EXAMPLE.TEST; BASE=DC=example,DC=test; ADMIN_PW=Admin-Passw0rd-1; SVC_PW=Svc-Bind-Secret-1
el() { awk "BEGIN{printf \"%.1f\", ($(date +%s%N)-$1)/1e9}"; }
if [ "$P" != 389 ] || [ "$PS" != 636 ]; then
  echo "Samba AD cannot move its LDAP ports (389/636, GC 3268/3269 are compiled in); pass 389 636" >&2; exit 2; fi
# Samba's unix sockets live under DIR (e.g. DIR/samba/private/ldap_priv/ldapi) and sun_path holds 107 bytes
[ ${#D} -le 70 ] || { echo "DIR is ${#D} characters; keep it to 70 (Samba's unix socket paths): $D" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root: the Samba AD DC binds ports < 1024 and writes NT ACL xattrs" >&2; exit 1; }
PATH=$PATH:/usr/sbin; need=
command -v samba >/dev/null && [ -d /usr/share/samba/setup ] || need="samba-ad-dc samba-ad-provision"
command -v ldapsearch >/dev/null || need="$need ldap-utils"; command -v openssl >/dev/null || need="$need openssl"
if [ -n "$need" ]; then
  ( export DEBIAN_FRONTEND=noninteractive; pol=/usr/sbin/policy-rc.d
    # keep apt from starting the system smbd/nmbd/winbind; their Debian config is not used here
    if [ ! -e $pol ]; then printf '#!/bin/sh\nexit 101\n' >$pol; chmod 755 $pol; trap "rm -f $pol" EXIT; fi
    apt-get install -y --no-install-recommends $need >/dev/null 2>&1 ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends $need >/dev/null; } )
fi
[ -z "$INSTALL_ONLY" ] || exit 0
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; }
mkdir -p "$D"; cd "$D"
[ -x "$(dirname "$0")/samba-ad-stop.sh" ] && "$(dirname "$0")/samba-ad-stop.sh" "$D" >/dev/null 2>&1 || true
for p in 389 636 3268 3269; do
  port_free $p || { echo "port 127.0.0.1:$p is in use (Samba AD needs 389 636 3268 3269); refusing to start" >&2; exit 1; }; done
rm -rf "$S" tls samba.log samba.pid provision.log; mkdir -p "$S/run" tls
# --- a throwaway CA and a server certificate for 127.0.0.1 / localhost / dc1.example.test
openssl req -x509 -newkey rsa:2048 -nodes -keyout tls/ca.key -out tls/ca.pem -days 30 -subj "/CN=keyless test AD CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout tls/server.key -out tls/server.csr -subj /CN=dc1.example.test 2>/dev/null
openssl x509 -req -in tls/server.csr -CA tls/ca.pem -CAkey tls/ca.key -CAcreateserial -out tls/server.pem -days 30 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:dc1.example.test\nextendedKeyUsage=serverAuth\n') 2>/dev/null
chmod 600 tls/*.key   # Samba refuses a key file that others can read
# --- provision (a minimal base config so that /etc/samba/smb.conf is not merged into ours)
printf '[global]\n\tinterfaces = 127.0.0.1\n\tbind interfaces only = yes\n' > base.conf
T1=$(date +%s%N)
samba-tool domain provision -s "$D/base.conf" --targetdir="$S" --realm=$REALM --domain=EXAMPLE --server-role=dc \
  --dns-backend=NONE --use-rfc2307 --host-name=dc1 --host-ip=127.0.0.1 --adminpass=$ADMIN_PW >provision.log 2>&1 ||
  { tail -20 provision.log >&2; exit 1; }
PROV=$(el $T1)
cat > "$S/etc/smb.conf" <<EOF
[global]
	netbios name = DC1
	workgroup = EXAMPLE
	realm = $REALM
	server role = active directory domain controller
	idmap_ldb:use rfc2307 = yes
	private dir = $S/private
	lock directory = $S
	state directory = $S/state
	cache directory = $S/cache
	binddns dir = $S/bind-dns
	pid directory = $S/run
	ncalrpc dir = $S/run/ncalrpc
	winbindd socket directory = $S/run/winbindd
	ntp signd socket directory = $S/run/ntp_signd
	interfaces = 127.0.0.1
	bind interfaces only = yes
	disable netbios = yes
	server services = ldap
	log level = 1
	tls enabled = yes
	tls keyfile = $D/tls/server.key
	tls certfile = $D/tls/server.pem
	tls cafile = $D/tls/ca.pem
	ldap server require strong auth = $([ "${AD_PLAIN_BIND:-0}" = 1 ] && echo no || echo yes)
EOF
# --- directory content, written offline into sam.ldb before the DC starts
T2=$(date +%s%N)
st() { samba-tool "$@" -s "$S/etc/smb.conf" >/dev/null; }
st ou create OU=Services
st user create keyless $SVC_PW --userou=OU=Services --description="bind account of the keyless connector"
st user setexpiry keyless --noexpiry
n=0; for u in alice:Alice:Test bob:Bob:Builder carol:Carol:Platform dave:Dave:Disabled; do
  IFS=: read -r id gn sn <<<"$u"; n=$((n+1))
  st user create $id "Passw0rd-${gn:0:1}1" --given-name=$gn --surname=$sn --mail-address=$id@example.test \
    --uid-number=$((10000+n)) --gid-number=10000 --unix-home=/home/$id --login-shell=/bin/bash --nis-domain=example
done
st user disable dave
for g in developers admins platform; do st group add $g; done
st group addmembers developers alice,bob,dave
st group addmembers platform carol
st group addmembers admins alice,platform
FILL=$(el $T2); T3=$(date +%s%N)
samba -F -M single -s "$S/etc/smb.conf" --debug-stdout >"$D/samba.log" 2>&1 & echo $! > "$D/samba.pid"
PID=$(cat samba.pid)
STEP=start; on_exit() { [ $? = 0 ] && return; echo "samba-ad-setup failed at: $STEP; stopping samba $PID (log $D/samba.log)" >&2
  kill $PID 2>/dev/null || true; for i in $(seq 150); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done; rm -f "$D/samba.pid"; }
trap on_exit EXIT
up=; for i in $(seq 300); do   # at most 30 s
  ldapsearch -x -H ldap://127.0.0.1 -s base -b "" -LLL dnsHostName >/dev/null 2>&1 && { up=1; break; }
  kill -0 $PID 2>/dev/null || { tail -20 samba.log >&2; echo "samba exited" >&2; exit 1; }; sleep 0.1; done
[ -n "${up:-}" ] || { tail -20 samba.log >&2; echo "samba LDAP not ready after 30 s" >&2; exit 1; }
START=$(el $T3)
# --- self-check: alice binds over LDAPS and StartTLS (plain 389 only with AD_PLAIN_BIND=1); dave is refused as
# disabled (AD sub-code 533) and his userAccountControl has ACCOUNTDISABLE (0x2); LDAP_MATCHING_RULE_IN_CHAIN works.
# (Samba has no WhoAmI extended operation, so ldapwhoami fails: an authenticated search proves the bind instead.)
export LDAPTLS_CACERT=$D/tls/ca.pem; ALICE="CN=Alice Test,CN=Users,$BASE"
STEP="alice over LDAPS"
ldapsearch -x -H ldaps://127.0.0.1 -D alice@example.test -w Passw0rd-A1 -b $BASE -LLL "(sAMAccountName=alice)" dn | grep -x "dn: $ALICE" >/dev/null
STEP="alice over StartTLS"
ldapsearch -x -ZZ -H ldap://127.0.0.1 -D "$ALICE" -w Passw0rd-A1 -b $BASE -LLL "(sAMAccountName=alice)" dn | grep -x "dn: $ALICE" >/dev/null
STEP="alice on plain 389"; rc=0
ldapsearch -x -H ldap://127.0.0.1 -D 'EXAMPLE\alice' -w Passw0rd-A1 -b $BASE -s base dn >/dev/null 2>&1 || rc=$?
[ $rc = $([ "${AD_PLAIN_BIND:-0}" = 1 ] && echo 0 || echo 8) ]   # 8: strongerAuthRequired
STEP="dave refused"
{ ldapsearch -x -H ldaps://127.0.0.1 -D dave@example.test -w Passw0rd-D1 -b $BASE -s base dn 2>&1 || true; } | grep 'data 533' >/dev/null
q() { ldapsearch -x -ZZ -H ldap://127.0.0.1 -D keyless@example.test -w $SVC_PW -b $BASE -LLL "$@"; }
STEP="IN_CHAIN"
[ "$(q "(memberOf:1.2.840.113556.1.4.1941:=CN=admins,CN=Users,$BASE)" sAMAccountName | grep '^sAMAccountName' | sort | xargs)" \
  = "sAMAccountName: alice sAMAccountName: carol sAMAccountName: platform" ]
STEP="dave's userAccountControl"
uac=$(q "(sAMAccountName=dave)" userAccountControl | sed -n 's/^userAccountControl: //p'); [ $((uac & 2)) = 2 ]
cat <<EOF
samba AD DC ready in $(el $T0) s (provision $PROV s, users+groups $FILL s, start $START s; pid $PID, pid file $D/samba.pid, log $D/samba.log)
  URL       ldaps://127.0.0.1:636   ldap://127.0.0.1:389 (StartTLS; simple bind without TLS: $([ "${AD_PLAIN_BIND:-0}" = 1 ] && echo allowed || echo refused))
  CA file   $D/tls/ca.pem   (export LDAPTLS_CACERT=$D/tls/ca.pem)
  realm     $REALM   domain EXAMPLE   base DN $BASE   users and groups in CN=Users,$BASE
  bind DN   CN=keyless,OU=Services,$BASE (or keyless@example.test)   password $SVC_PW
  users     alice bob carol dave(disabled, uac $uac)   UPN and mail <user>@example.test, DN CN=<Given Surname>,CN=Users,...
            e.g. $ALICE
            password Passw0rd-A1 / -B1 / -C1 / -D1 (first letter of the user)
  groups    developers{alice,bob,dave} admins{alice,platform} platform{carol}
  admin     Administrator@example.test   password $ADMIN_PW
EOF
