# tests/e2e/sasl-lib.sh — a submission service with real SASL authentication
# for the private Postfix of lib.sh: Cyrus SASL with a private sasldb
# (sasl2-bin's saslpasswd2, libsasl2-modules-db's sasldb plugin), the
# secure snippet of contrib/postfix (authentication required,
# smtpd_sender_login_maps + reject_sender_login_mismatch).
#
#   . lib.sh; . sasl-lib.sh
#   e2e_setup; ...
#   sasl_setup                       # PF_SUB_PORT, SASL_DB, SENDER_LOGIN
#   sasl_user alice@org.example      # password: SASL_PASS
#   printf '...' >"$SENDER_LOGIN"    # the sender login map (both sides)
#   postfix_start $(sasl_main_cf)    # main.cf lines; the service is in PF_MASTER_EXTRA
#   send_auth LOGIN FROM TO FILE     # AUTH PLAIN as LOGIN, on PF_SUB_PORT
#   signer_of FILE                   # the signer's address, or "unsigned"

SASL_PASS='e2e-Secret-1'

# sasl_setup — the sasldb, the Cyrus configuration for smtpd, an empty
# sender login map and the submission service (PF_MASTER_EXTRA).
sasl_setup() {
	need saslpasswd2 sasldblistusers2
	[ -e /usr/lib/x86_64-linux-gnu/sasl2/libsasldb.so ] ||
		ls /usr/lib/*/sasl2/libsasldb.so >/dev/null 2>&1 ||
		fail "prerequisite missing: the Cyrus sasldb plugin (libsasl2-modules-db; run 'make deps' as root)"
	ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1 ||
		fail "prerequisite missing: the Cyrus PLAIN mechanism (libsasl2-modules; run 'make deps' as root)"
	PF_SUB_PORT=$(e2e_free_port) || exit 1
	E2E_PORTS_USED="$E2E_PORTS_USED $PF_SUB_PORT"
	# Debian's Postfix reads $config_directory/sasl/smtpd.conf whatever
	# cyrus_sasl_config_path says; other builds follow that setting.
	SASL_DIR=$PF_DIR/etc/sasl
	SASL_DB=$SASL_DIR/sasldb2
	SENDER_LOGIN=$E2E_DIR/sender_login
	mkdir -p "$SASL_DIR"
	cat >"$SASL_DIR/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $SASL_DB
EOF
	: >"$SENDER_LOGIN"
	# smtpd runs as user postfix and reads the sasldb itself.
	chmod 0755 "$PF_DIR" "$PF_DIR/etc" "$SASL_DIR"
	PF_MASTER_EXTRA="$E2E_HOST:$PF_SUB_PORT inet n - n - - smtpd
  -o syslog_name=postfix-e2e/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_security_level=none
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_sender_restrictions=reject_sender_login_mismatch
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o milter_macro_daemon_name=ORIGINATING
  -o smtpd_milters=${PF_MILTER:-inet:$E2E_HOST:$MILTER_PORT}"
}

# sasl_main_cf — the main.cf lines (postfix_start arguments) the
# submission service needs.
sasl_main_cf() {
	echo "cyrus_sasl_config_path=$SASL_DIR"
	echo "smtpd_sasl_type=cyrus"
	echo "smtpd_sasl_path=smtpd"
	echo "smtpd_sasl_security_options=noanonymous"
	echo "smtpd_sender_login_maps=texthash:$SENDER_LOGIN"
}

# sasl_user USER@REALM — add a user with password SASL_PASS.
sasl_user() {
	printf '%s' "$SASL_PASS" | saslpasswd2 -p -c -f "$SASL_DB" -u "${1#*@}" "${1%%@*}" \
		>"$SASL_DIR/saslpasswd2.log" 2>&1 ||
		fail "saslpasswd2 $1 failed: $(cat "$SASL_DIR/saslpasswd2.log")"
	chown postfix "$SASL_DB" && chmod 0600 "$SASL_DB" ||
		fail "cannot hand $SASL_DB to user postfix"
}

# send_auth LOGIN PORT FROM TO [FILE | --body TEXT] [SWAKS-ARGS...] —
# send_mail with AUTH PLAIN as LOGIN (password SASL_PASS).
send_auth() {
	_sa_login=$1
	shift
	_sa_port=$1 _sa_from=$2 _sa_to=$3
	shift 3
	send_mail "$_sa_port" "$_sa_from" "$_sa_to" "$@" --auth PLAIN \
		--auth-user "$_sa_login" --auth-password "$SASL_PASS"
}

# signer_of FILE — the e-mail address of the certificate that signed the
# message FILE (a multipart/signed message, as received), verified against
# the test root; "unsigned" when it is no signed message.
signer_of() {
	_so_ct=$(msg_header "$1" Content-Type | tr 'A-Z' 'a-z')
	case $_so_ct in
	*multipart/signed*) ;;
	*) echo unsigned; return 0 ;;
	esac
	openssl cms -verify -in "$1" -CAfile "$PKI/ca.pem" -purpose smimesign \
		-signer "$1.signer.pem" -out /dev/null >"$1.verify.log" 2>&1 ||
		fail "the signature of $1 does not verify: $(cat "$1.verify.log")"
	openssl x509 -in "$1.signer.pem" -noout -ext subjectAltName 2>/dev/null |
		sed -n 's/.*email:\([^, ]*\).*/\1/p' | head -n 1
}

# twostage_setup — after sasl_setup: the two-stage pattern of
# contrib/postfix. Pass 1 (the submission service: SASL, the milter signs
# and checks the sender) applies the address mappings in its cleanup and
# hands every message, with its final recipients, to pass 2 on
# PF_PASS2_PORT (content_filter), which runs the milter again with
# receive_override_options = no_address_mappings: there the milter sees
# the recipients after aliases, lists and forwards, and encrypts or
# refuses for them.
twostage_setup() {
	PF_PASS2_PORT=$(e2e_free_port) || exit 1
	E2E_PORTS_USED="$E2E_PORTS_USED $PF_PASS2_PORT"
	PF_MASTER_EXTRA="$PF_MASTER_EXTRA
  -o content_filter=smime-pass2:[$E2E_HOST]:$PF_PASS2_PORT
smime-pass2 unix - - n - - smtp
  -o syslog_name=postfix-e2e/smime-pass2
$E2E_HOST:$PF_PASS2_PORT inet n - n - - smtpd
  -o syslog_name=postfix-e2e/pass2
  -o content_filter=
  -o receive_override_options=no_address_mappings
  -o smtpd_client_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o mynetworks=127.0.0.0/8
  -o milter_macro_daemon_name=ORIGINATING
  -o smtpd_milters=${PF_MILTER:-inet:$E2E_HOST:$MILTER_PORT}"
}
