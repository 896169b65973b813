#!/bin/sh
# make demo — the whole job end to end, narrated.
#
# A throwaway PKI, a private Postfix on loopback ports with smime-milter in
# it, and smtp-sink as the "internet". Three scenes:
#   1. bob@partner.example sends alice@org.example a signed message:
#      his certificate is harvested into the key cache;
#   2. alice replies: the message leaves signed and encrypted, and bob's
#      key opens it;
#   3. alice writes to zoe@partner.example with [encrypt] in the subject:
#      no key was ever exchanged, so the message is refused in the SMTP
#      session with a diagnostic.
# Everything started here is stopped by its PID at the end; the files stay.
set -u
SMIME_TOP=${SMIME_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
SMIME_BINDIR=${SMIME_BINDIR:-$SMIME_TOP/milter}
export SMIME_TOP SMIME_BINDIR
E2E_KEEP=${E2E_KEEP:-always}
. "$SMIME_TOP/tests/e2e/lib.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { sed 's/^/    /'; }

[ "$(id -u)" = 0 ] || { echo "make demo needs root (it runs a private Postfix)" >&2; exit 1; }
need openssl swaks postfix smtp-sink

e2e_setup
PKI=$E2E_DIR/pki
say "Setting up in $E2E_DIR"
sh "$SMIME_TOP/tests/pki/mkpki.sh" "$PKI" >/dev/null 2>&1 || fail "mkpki.sh failed"
echo "    a demo CA, alice@org.example (our user, key in keys_dir) and bob@partner.example"
sink_start
milter_write_config "$E2E_DIR/smime-milter.conf" ''
cp "$PKI/ca.pem" "$E2E_DIR/ca.pem"
cp "$PKI/alice.pem" "$E2E_DIR/keys/alice.pem"
milter_start "$E2E_DIR/smime-milter.conf"
postfix_start
echo "    smime-milter on $MILTER_SOCKET; Postfix on 127.0.0.1:$PF_IN_PORT (inbound)"
echo "    and 127.0.0.1:$PF_OUT_PORT (submission, outbound); smtp-sink on :$SINK_PORT"
CTL="$SMIME_BINDIR/smimectl -c $E2E_DIR/smime-milter.conf"

say "1. Bob sends Alice a signed message (the key exchange)"
printf 'Hi Alice,\r\nhere is my signature, so you can write to me encrypted.\r\nBob\r\n' >"$E2E_DIR/bob.txt"
openssl cms -sign -in "$E2E_DIR/bob.txt" -text -from "Bob <bob@partner.example>" \
	-to alice@org.example -subject "Hello from Bob" -signer "$PKI/bob.crt" \
	-inkey "$PKI/bob.key" -certfile "$PKI/chain.pem" -out "$E2E_DIR/bob-signed.eml" ||
	fail "openssl cms -sign failed"
send_mail "$PF_IN_PORT" bob@partner.example alice@org.example "$E2E_DIR/bob-signed.eml"
expect_reply 250
qid=$(queue_id_of_last)
wait_delivered 1
log_wait "$MILTER_LOG" "" "$qid: inbound" 10 >/dev/null || fail "no log line for $qid"
echo "  the milter's log line:"
grep "$qid: inbound" "$MILTER_LOG" | show
echo "  what Alice receives starts with:"
grep '^Authentication-Results:' "$(sink_file_of "$qid")" | show
echo "  smimectl cert list:"
$CTL cert list | show

say "2. Alice replies to Bob (leaves signed and encrypted)"
printf 'From: Alice <alice@org.example>\r\nTo: Bob <bob@partner.example>\r\nSubject: Re: Hello from Bob\r\n\r\nHi Bob,\r\nthis reply is for your eyes only.\r\nAlice\r\n' >"$E2E_DIR/alice-reply.eml"
send_mail "$PF_OUT_PORT" alice@org.example bob@partner.example "$E2E_DIR/alice-reply.eml"
expect_reply 250
qid=$(queue_id_of_last)
wait_delivered 2
log_wait "$MILTER_LOG" "" "$qid: outbound" 10 >/dev/null || fail "no log line for $qid"
grep "$qid: outbound" "$MILTER_LOG" | show
f=$(sink_file_of "$qid")
sink_message "$f" >"$E2E_DIR/as-delivered.eml"
echo "  the headers as they leave (the body is an S/MIME envelope):"
sed -n '/^From:/p;/^To:/p;/^Subject:/p;/^MIME-Version:/p;/^Content-/,/^$/p' "$E2E_DIR/as-delivered.eml" |
	sed '/^$/d' | show
echo "  Bob decrypts with his key and verifies Alice's signature (openssl cms):"
openssl cms -decrypt -in "$E2E_DIR/as-delivered.eml" -recip "$PKI/bob.crt" -inkey "$PKI/bob.key" \
	-out "$E2E_DIR/decrypted.eml" || fail "bob cannot decrypt"
openssl cms -verify -in "$E2E_DIR/decrypted.eml" -CAfile "$PKI/ca.pem" \
	-signer "$E2E_DIR/signer.pem" -out "$E2E_DIR/verified.txt" 2>&1 | show
openssl x509 -in "$E2E_DIR/signer.pem" -noout -subject | sed 's/^subject=/signed by: /' | show
sed 's/\r$//' "$E2E_DIR/verified.txt" | show

say "3. Alice writes to Zoe with [encrypt] in the subject (no key exchanged)"
printf 'From: Alice <alice@org.example>\r\nTo: zoe@partner.example\r\nSubject: [encrypt] the contract\r\n\r\nConfidential.\r\n' >"$E2E_DIR/alice-zoe.eml"
send_mail "$PF_OUT_PORT" alice@org.example zoe@partner.example "$E2E_DIR/alice-zoe.eml"
expect_reply 550
echo "  the SMTP reply Alice's mail program gets:"
grep -E '^ *<\*\* +5[0-9][0-9]' "$SWAKS_LOG" | sed 's/^ *<\*\* *//' | show
[ "$(sink_count)" -eq 2 ] || fail "the refused message was delivered"

say "Done"
echo "  Everything is stopped. The files are in $E2E_DIR:"
echo "    smime-milter.conf, milter.log   the daemon's configuration and log"
echo "    cache/cache.db                  the key cache (smimectl -c $E2E_DIR/smime-milter.conf cert list)"
echo "    sink/                           every message as delivered"
echo "    pki/                            the throwaway demo PKI"
