#!/bin/bash
# Usage: slapd-setup.sh DIR PORT [LDAPS_PORT]   (installs Debian slapd ldap-utils openssl if missing)
#        slapd-setup.sh --install   (only install the packages)
# A private OpenLDAP on 127.0.0.1 with its own cn=config, database and CA under DIR; not the system service.
# Suffix dc=example,dc=com; bind account cn=keyless,ou=services; users alice, bob, carol; groups developers,
# admins, platform (platform is a member of admins); memberOf overlay. StartTLS always; LDAPS if LDAPS_PORT.
# SLAPD_MEMBEROF=dynlist: memberOf computed by slapo-dynlist instead, transitive through nested groups.
# SLAPD_DEBUG=stats (default) is the -d level; the log is DIR/slapd.log. Stop: slapd-stop.sh DIR.
set -euo pipefail
# --install: only install the Debian packages (scripts/test does it once, before tests start partners in parallel).
INSTALL_ONLY=; if [ "${1:-}" = --install ]; then INSTALL_ONLY=1; set -- /tmp/keyless-partner-install 389 636; fi
D=$(realpath -m "${1:?usage: slapd-setup.sh DIR PORT [LDAPS_PORT]}"); P=${2:?PORT}; PS=${3:-}
MODE=${SLAPD_MEMBEROF:-overlay}; LVL=${SLAPD_DEBUG:-stats}; T0=$(date +%s%N)
BASE=dc=example,dc=com; ADMIN_PW=Admin-Passw0rd-1; SVC_PW=Svc-Bind-Secret-1
case $MODE in overlay|dynlist) ;; *) echo "SLAPD_MEMBEROF must be overlay or dynlist" >&2; exit 2;; esac
PATH=$PATH:/usr/sbin; need=; command -v slapd >/dev/null || need="slapd"; command -v ldapsearch >/dev/null || need="$need ldap-utils"
command -v openssl >/dev/null || need="$need openssl"
if [ -n "$need" ]; then
  [ "$(id -u)" = 0 ] || { echo "missing:$need (install as root)" >&2; exit 1; }
  ( export DEBIAN_FRONTEND=noninteractive; pol=/usr/sbin/policy-rc.d
    # keep apt from starting the system slapd on *:389; Debian's own config is not used here
    if [ ! -e $pol ]; then printf '#!/bin/sh\nexit 101\n' >$pol; chmod 755 $pol; trap "rm -f $pol" EXIT; fi
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    apt-get install -y --no-install-recommends $need >/dev/null 2>&1 ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends $need >/dev/null; } )
fi
[ -z "$INSTALL_ONLY" ] || exit 0
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; }
mkdir -p "$D"; cd "$D"
[ -x "$(dirname "$0")/slapd-stop.sh" ] && "$(dirname "$0")/slapd-stop.sh" "$D" >/dev/null 2>&1 || true
for p in $P $PS; do port_free $p || { echo "port 127.0.0.1:$p is in use; refusing to start" >&2; exit 1; }; done
rm -rf slapd.d db tls slapd.log slapd.pid; mkdir -p slapd.d db tls
# --- a throwaway CA and a server certificate for 127.0.0.1 / localhost
openssl req -x509 -newkey rsa:2048 -nodes -keyout tls/ca.key -out tls/ca.pem -days 30 -subj "/CN=keyless test LDAP CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout tls/server.key -out tls/server.csr -subj /CN=localhost 2>/dev/null
openssl x509 -req -in tls/server.csr -CA tls/ca.pem -CAkey tls/ca.key -CAcreateserial -out tls/server.pem -days 30 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') 2>/dev/null
h() { slappasswd -h '{SSHA}' -s "$1"; }
if [ "$MODE" = dynlist ]; then
  MODS="olcModuleLoad: memberof
olcModuleLoad: dynlist"; SCHEMA=dyngroup
  OVL="dn: olcOverlay={0}dynlist,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcDynListConfig
olcOverlay: {0}dynlist
olcDynListAttrSet: {0}groupOfURLs memberURL member+memberOf@groupOfNames*"
else
  MODS="olcModuleLoad: memberof
olcModuleLoad: refint"; SCHEMA=
  OVL="dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {1}refint
olcRefintAttribute: member"
fi
cat > config.ldif <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcTLSCACertificateFile: $D/tls/ca.pem
olcTLSCertificateFile: $D/tls/server.pem
olcTLSCertificateKeyFile: $D/tls/server.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
$MODS

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif
${SCHEMA:+include: file:///etc/ldap/schema/$SCHEMA.ldif}

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=Subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,cn=config
olcRootPW: $(h $ADMIN_PW)

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $D/db
olcDbMaxSize: 268435456
olcSuffix: $BASE
olcRootDN: cn=admin,$BASE
olcRootPW: $(h $ADMIN_PW)
olcDbIndex: objectClass eq
olcDbIndex: uid,mail,entryUUID eq
olcDbIndex: cn eq,sub
olcDbIndex: member eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by dn.exact="cn=keyless,ou=services,$BASE" read by users read by * none

$OVL
EOF
slapadd -n0 -F slapd.d -l config.ldif >slapadd.log 2>&1 || { cat slapadd.log >&2; exit 1; }
RUNAS=()   # run as the openldap user when we are root and it can reach DIR; else as ourselves
if [ "$(id -u)" = 0 ] && id openldap >/dev/null 2>&1; then
  chown -R openldap:openldap slapd.d db tls
  runuser -u openldap -- test -w "$D/db" -a -r "$D/tls/server.key" && RUNAS=(-u openldap -g openldap) ||
    chown -R root:root slapd.d db tls
fi
URLS="ldap://127.0.0.1:$P/${PS:+ ldaps://127.0.0.1:$PS/}"
slapd -d "$LVL" -h "$URLS" -F "$D/slapd.d" "${RUNAS[@]}" >"$D/slapd.log" 2>&1 & echo $! > "$D/slapd.pid"
PID=$(cat slapd.pid)
on_exit() { [ $? = 0 ] && return; echo "slapd-setup failed; stopping slapd $PID (log $D/slapd.log)" >&2
  kill $PID 2>/dev/null || true; for i in $(seq 150); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done; rm -f "$D/slapd.pid"; }
trap on_exit EXIT
up=; for i in $(seq 100); do   # at most 10 s
  ldapsearch -x -H ldap://127.0.0.1:$P -s base -b "" -LLL namingContexts >/dev/null 2>&1 && { up=1; break; }
  kill -0 $PID 2>/dev/null || { tail -20 slapd.log >&2; echo "slapd exited" >&2; exit 1; }; sleep 0.1; done
[ -n "${up:-}" ] || { tail -20 slapd.log >&2; echo "slapd not ready after 10 s" >&2; exit 1; }
u() { printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: %s\ncn: %s %s\nsn: %s\ngivenName: %s\ndisplayName: %s %s\nmail: %s@example.com\nuidNumber: %s\ngidNumber: 10000\nhomeDirectory: /home/%s\nuserPassword: %s\n\n' \
  "$1" $BASE "$1" "$2" "$3" "$3" "$2" "$2" "$3" "$1" "$4" "$1" "$(h "Passw0rd-${2:0:1}1")"; }
g() { printf 'dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n' "$1" $BASE "$1"; shift
  for m in "$@"; do printf 'member: %s,%s\n' "$m" $BASE; done; echo; }
{ printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n' $BASE
  for o in people groups services; do printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' $o $BASE $o; done
  printf 'dn: cn=keyless,ou=services,%s\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: keyless\nuserPassword: %s\n\n' $BASE "$(h $SVC_PW)"
  u alice Alice Test 10001; u bob Bob Builder 10002; u carol Carol Platform 10003
  g developers uid=alice,ou=people uid=bob,ou=people
  g platform uid=carol,ou=people
  g admins uid=alice,ou=people cn=platform,ou=groups
} > data.ldif
ldapadd -x -H ldap://127.0.0.1:$P -D "cn=admin,$BASE" -w $ADMIN_PW -f data.ldif >ldapadd.log
# self-check: the bind account sees carol's memberOf (dynlist: also admins, through platform); alice binds over StartTLS (and LDAPS)
export LDAPTLS_CACERT=$D/tls/ca.pem
ldapsearch -x -H ldap://127.0.0.1:$P -D "cn=keyless,ou=services,$BASE" -w $SVC_PW -b "ou=people,$BASE" -LLL \
  "(uid=carol)" memberOf | grep "memberOf: cn=$([ $MODE = dynlist ] && echo admins || echo platform),ou=groups,$BASE" >/dev/null
[ "$(ldapwhoami -x -ZZ -H ldap://127.0.0.1:$P -D "uid=alice,ou=people,$BASE" -w Passw0rd-A1)" = "dn:uid=alice,ou=people,$BASE" ]
[ -z "$PS" ] || ldapwhoami -x -H ldaps://127.0.0.1:$PS -D "uid=alice,ou=people,$BASE" -w Passw0rd-A1 >/dev/null
cat <<EOF
slapd ready in $(awk "BEGIN{printf \"%.1f\", ($(date +%s%N)-$T0)/1e9}") s (pid $PID, pid file $D/slapd.pid, user ${RUNAS[1]:-$(id -un)}, memberOf: $MODE)
  URL       ldap://127.0.0.1:$P  (StartTLS)${PS:+   ldaps://127.0.0.1:$PS}
  CA file   $D/tls/ca.pem   (export LDAPTLS_CACERT=$D/tls/ca.pem)
  base DN   $BASE   users ou=people, groups ou=groups
  bind DN   cn=keyless,ou=services,$BASE   password $SVC_PW
  users     uid=alice|bob|carol,ou=people,$BASE   mail <uid>@example.com
            password Passw0rd-A1 / -B1 / -C1 (first letter of the user), as in samba-ad-setup.sh
  groups    developers{alice,bob} admins{alice,platform} platform{carol}
  admin     cn=admin,$BASE and cn=admin,cn=config   password $ADMIN_PW
EOF
