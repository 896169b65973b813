#!/bin/sh
# mkpki.sh DIR — generate the test PKI for smime-milter into DIR (created if
# missing). Nothing is cached in git: every test run makes fresh keys, and all
# dates are relative to the moment the script runs. Takes a few seconds.
#
# Layout (every name is fixed; other suites rely on it):
#
#   ca.pem              trusted roots bundle: root.crt only
#   root.crt root.key   "smime-milter Test Root CA"        (RSA-2048, -10y..+10y)
#   inter.crt inter.key "smime-milter Test Intermediate CA" (RSA-2048, issued by root)
#   chain.pem           inter.crt (the untrusted intermediate every EE needs)
#   untrusted-root.crt untrusted-root.key
#                       "smime-milter Untrusted Root CA" — NOT in ca.pem
#   p12.pass            password of every .p12, on its first line
#   identities.tsv      one line per identity: name, address, key, note
#
#   For each identity NAME below:
#     NAME.crt  the certificate (PEM)
#     NAME.key  its private key (PEM, unencrypted, mode 0600)
#     NAME.pem  key + certificate + chain (intermediate), mode 0600: the
#               format smime_key_load_pem() reads (untrusted: key + cert +
#               untrusted-root.crt; selfsigned: key + cert)
#     NAME.p12  the same as PKCS#12, exported with -legacy (3DES/SHA-1) so
#               gpgsm 2.2 can import it; password in p12.pass. gpgsm still
#               rejects a few legacy exports (salt-dependent): re-export from
#               NAME.key/NAME.crt and retry. gpgsm cannot import EC keys.
#
#   NAME            address                       key       notes
#   alice           alice@org.example             RSA-2048  our internal user, -30d..+365d
#   alice-renewed   alice@org.example             RSA-2048  new key, newer notBefore -2d..+730d
#   alice-expired   alice@org.example             RSA-2048  old key, -800d..-60d (expired)
#   bob             bob@partner.example           RSA-2048  -30d..+365d
#   bob-renewed     bob@partner.example           RSA-2048  new key, -2d..+730d
#   carol           carol@partner.example         EC P-256  keyUsage digitalSignature,keyAgreement
#   dave            dave@partner.example          RSA-4096
#   expired         expired@partner.example       RSA-2048  -400d..-1d
#   notyet          notyet@partner.example        RSA-2048  +30d..+400d (not yet valid)
#   untrusted       untrusted@partner.example     RSA-2048  issued by untrusted-root
#   selfsigned      selfsigned@partner.example    RSA-2048  self-signed end entity
#   san-only        sanonly@partner.example       RSA-2048  address only in SAN (subject has no emailAddress)
#   subject-only    subjectonly@partner.example   RSA-2048  address only in subject emailAddress (no SAN)
#   san-differs     sanaddr@partner.example       RSA-2048  SAN sanaddr@, subject emailAddress subjaddr@partner.example
#   no-emailprot    noeku@partner.example         RSA-2048  EKU clientAuth only (no emailProtection)
#   sign-only       signonly@partner.example      RSA-2048  keyUsage digitalSignature only
#   sha1            sha1@partner.example          RSA-2048  certificate signed with SHA-1
#   rsa1024         rsa1024@partner.example       RSA-1024  weak key
#   erin-sign       erin@partner.example          RSA-2048  signing cert: keyUsage digitalSignature,nonRepudiation
#   erin-enc        erin@partner.example          RSA-2048  encryption cert: keyUsage keyEncipherment (separate key)
#
# Unless noted: issued by the intermediate with SHA-256, validity -30d..+365d,
# subject "CN=<Name>, emailAddress=<address>", SAN email:<address>, keyUsage
# digitalSignature,keyEncipherment (RSA), EKU emailProtection, SKI/AKI.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
command -v openssl >/dev/null 2>&1 || { echo "mkpki.sh: openssl not found" >&2; exit 1; }

D=$1
mkdir -p "$D"
D=$(cd "$D" && pwd)
umask 077
W=$D/.work
rm -rf "$W"
mkdir -p "$W"

# A date DAYS from now, in the form openssl ca -startdate/-enddate takes.
when() { date -u -d "$1 days" +%Y%m%d%H%M%SZ; }

cat >"$W/openssl.cnf" <<'EOF'
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $ENV::CADIR
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = yes
copy_extensions = none
[ policy_any ]
countryName = optional
organizationName = optional
commonName = optional
emailAddress = optional
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_inter ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ ee_rsa ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:$ENV::EMAIL
[ ee_ec ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:$ENV::EMAIL
[ ee_nosan ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ee_noeku ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:$ENV::EMAIL
[ ee_signonly ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:$ENV::EMAIL
[ ee_sign ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:$ENV::EMAIL
[ ee_enc ]
basicConstraints = CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:$ENV::EMAIL
[ ee_selfsigned ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
subjectAltName = email:$ENV::EMAIL
EOF
export OPENSSL_CONF="$W/openssl.cnf"
CNF=$W/openssl.cnf
EMAIL=unused@example.invalid
CADIR=$W
export EMAIL CADIR

printf 'smime-test\n' >"$D/p12.pass"
printf 'name\taddress\tkey\tnote\n' >"$D/identities.tsv"

# newkey FILE rsa BITS | newkey FILE ec
newkey() {
	case $2 in
	rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt "rsa_keygen_bits:$3" -out "$1" ;;
	ec) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" ;;
	esac
}

# newca NAME: a CA database directory under .work
newca() {
	mkdir -p "$W/$1/new"
	: >"$W/$1/index.txt"
	# A random serial start keeps certificates of different runs apart.
	echo "1$(openssl rand -hex 7)0" >"$W/$1/serial"
}

# sign CA CAFILE CAKEY CSR OUT EXTSECTION START END [MD]
sign() {
	CADIR=$W/$1 openssl ca -batch -notext -preserveDN -config "$CNF" \
		-cert "$2" -keyfile "$3" -in "$4" -out "$5" \
		-extfile "$CNF" -extensions "$6" \
		-startdate "$7" -enddate "$8" -md "${9:-sha256}" 2>"$W/ca.log" ||
		{ cat "$W/ca.log" >&2; exit 1; }
}

# Roots and the intermediate.
newca root
newkey "$D/root.key" rsa 2048
openssl req -new -config "$CNF" -key "$D/root.key" \
	-subj "/O=smime-milter tests/CN=smime-milter Test Root CA" -out "$W/root.csr"
CADIR=$W/root openssl ca -batch -notext -preserveDN -selfsign -config "$CNF" \
	-keyfile "$D/root.key" -in "$W/root.csr" -out "$D/root.crt" \
	-extfile "$CNF" -extensions v3_ca -startdate "$(when -3650)" \
	-enddate "$(when 3650)" 2>"$W/ca.log" || { cat "$W/ca.log" >&2; exit 1; }

newkey "$D/inter.key" rsa 2048
openssl req -new -config "$CNF" -key "$D/inter.key" \
	-subj "/O=smime-milter tests/CN=smime-milter Test Intermediate CA" -out "$W/inter.csr"
sign root "$D/root.crt" "$D/root.key" "$W/inter.csr" "$D/inter.crt" v3_inter \
	"$(when -3000)" "$(when 3000)"
newca inter

newca untrusted-root
newkey "$D/untrusted-root.key" rsa 2048
openssl req -new -config "$CNF" -key "$D/untrusted-root.key" \
	-subj "/O=smime-milter tests/CN=smime-milter Untrusted Root CA" -out "$W/ur.csr"
CADIR=$W/untrusted-root openssl ca -batch -notext -preserveDN -selfsign -config "$CNF" \
	-keyfile "$D/untrusted-root.key" -in "$W/ur.csr" -out "$D/untrusted-root.crt" \
	-extfile "$CNF" -extensions v3_ca -startdate "$(when -3650)" \
	-enddate "$(when 3650)" 2>"$W/ca.log" || { cat "$W/ca.log" >&2; exit 1; }

cp "$D/root.crt" "$D/ca.pem"
cp "$D/inter.crt" "$D/chain.pem"
chmod 644 "$D"/*.crt "$D/ca.pem" "$D/chain.pem"

# ee NAME ADDRESS KEYTYPE BITS SUBJECT EXT START END [MD] [ISSUER] [NOTE]
#   ISSUER: inter (default), untrusted, self
ee() {
	name=$1 addr=$2 kt=$3 bits=$4 subj=$5 ext=$6 start=$7 end=$8
	md=${9:-sha256} issuer=${10:-inter} note=${11:-}
	EMAIL=$addr
	newkey "$D/$name.key" "$kt" "$bits"
	case $issuer in
	self)
		openssl req -new -x509 -config "$CNF" -key "$D/$name.key" -subj "$subj" \
			-extensions "$ext" -days 365 -set_serial "0x1$(openssl rand -hex 7)" \
			-out "$D/$name.crt"
		chain=/dev/null
		p12chain=
		;;
	untrusted)
		openssl req -new -config "$CNF" -key "$D/$name.key" -subj "$subj" -out "$W/$name.csr"
		sign untrusted-root "$D/untrusted-root.crt" "$D/untrusted-root.key" \
			"$W/$name.csr" "$D/$name.crt" "$ext" "$start" "$end" "$md"
		chain=$D/untrusted-root.crt
		p12chain=$chain
		;;
	*)
		openssl req -new -config "$CNF" -key "$D/$name.key" -subj "$subj" -out "$W/$name.csr"
		sign inter "$D/inter.crt" "$D/inter.key" "$W/$name.csr" "$D/$name.crt" \
			"$ext" "$start" "$end" "$md"
		chain=$D/chain.pem
		p12chain=$chain
		;;
	esac
	chmod 644 "$D/$name.crt"
	cat "$D/$name.key" "$D/$name.crt" "$chain" >"$D/$name.pem"
	chmod 600 "$D/$name.key" "$D/$name.pem"
	openssl pkcs12 -export -legacy -name "$name" -inkey "$D/$name.key" \
		-in "$D/$name.crt" ${p12chain:+-certfile "$p12chain"} \
		-passout "file:$D/p12.pass" -out "$D/$name.p12"
	chmod 600 "$D/$name.p12"
	printf '%s\t%s\t%s\t%s\n' "$name" "$addr" "$kt$bits" "$note" >>"$D/identities.tsv"
}

N30=$(when -30)
P365=$(when 365)
O="/O=smime-milter tests"

ee alice alice@org.example rsa 2048 "$O/CN=Alice Example/emailAddress=alice@org.example" \
	ee_rsa "$N30" "$P365" sha256 inter "internal user"
ee alice-renewed alice@org.example rsa 2048 "$O/CN=Alice Example/emailAddress=alice@org.example" \
	ee_rsa "$(when -2)" "$(when 730)" sha256 inter "renewal, newer notBefore"
ee alice-expired alice@org.example rsa 2048 "$O/CN=Alice Example/emailAddress=alice@org.example" \
	ee_rsa "$(when -800)" "$(when -60)" sha256 inter "expired old key"
ee bob bob@partner.example rsa 2048 "$O/CN=Bob Partner/emailAddress=bob@partner.example" \
	ee_rsa "$N30" "$P365" sha256 inter "partner"
ee bob-renewed bob@partner.example rsa 2048 "$O/CN=Bob Partner/emailAddress=bob@partner.example" \
	ee_rsa "$(when -2)" "$(when 730)" sha256 inter "renewal, newer notBefore"
ee carol carol@partner.example ec 256 "$O/CN=Carol Partner/emailAddress=carol@partner.example" \
	ee_ec "$N30" "$P365" sha256 inter "EC P-256"
ee dave dave@partner.example rsa 4096 "$O/CN=Dave Partner/emailAddress=dave@partner.example" \
	ee_rsa "$N30" "$P365" sha256 inter "RSA-4096"
ee expired expired@partner.example rsa 2048 "$O/CN=Expired Partner/emailAddress=expired@partner.example" \
	ee_rsa "$(when -400)" "$(when -1)" sha256 inter "expired"
ee notyet notyet@partner.example rsa 2048 "$O/CN=Notyet Partner/emailAddress=notyet@partner.example" \
	ee_rsa "$(when 30)" "$(when 400)" sha256 inter "not yet valid"
ee untrusted untrusted@partner.example rsa 2048 "$O/CN=Untrusted Partner/emailAddress=untrusted@partner.example" \
	ee_rsa "$N30" "$P365" sha256 untrusted "issued by untrusted root"
ee selfsigned selfsigned@partner.example rsa 2048 "$O/CN=Selfsigned Partner/emailAddress=selfsigned@partner.example" \
	ee_selfsigned "$N30" "$P365" sha256 self "self-signed"
ee san-only sanonly@partner.example rsa 2048 "$O/CN=Sanonly Partner" \
	ee_rsa "$N30" "$P365" sha256 inter "address only in SAN"
ee subject-only subjectonly@partner.example rsa 2048 "$O/CN=Subjectonly Partner/emailAddress=subjectonly@partner.example" \
	ee_nosan "$N30" "$P365" sha256 inter "address only in subject"
ee san-differs sanaddr@partner.example rsa 2048 "$O/CN=Differs Partner/emailAddress=subjaddr@partner.example" \
	ee_rsa "$N30" "$P365" sha256 inter "SAN sanaddr@, subject subjaddr@"
ee no-emailprot noeku@partner.example rsa 2048 "$O/CN=Noeku Partner/emailAddress=noeku@partner.example" \
	ee_noeku "$N30" "$P365" sha256 inter "EKU clientAuth only"
ee sign-only signonly@partner.example rsa 2048 "$O/CN=Signonly Partner/emailAddress=signonly@partner.example" \
	ee_signonly "$N30" "$P365" sha256 inter "keyUsage digitalSignature only"
ee sha1 sha1@partner.example rsa 2048 "$O/CN=Sha1 Partner/emailAddress=sha1@partner.example" \
	ee_rsa "$N30" "$P365" sha1 inter "certificate signed with SHA-1"
ee rsa1024 rsa1024@partner.example rsa 1024 "$O/CN=Rsa1024 Partner/emailAddress=rsa1024@partner.example" \
	ee_rsa "$N30" "$P365" sha256 inter "RSA-1024"
ee erin-sign erin@partner.example rsa 2048 "$O/CN=Erin Partner/emailAddress=erin@partner.example" \
	ee_sign "$N30" "$P365" sha256 inter "signing certificate"
ee erin-enc erin@partner.example rsa 2048 "$O/CN=Erin Partner/emailAddress=erin@partner.example" \
	ee_enc "$N30" "$P365" sha256 inter "encryption certificate"

chmod 600 "$D/root.key" "$D/inter.key" "$D/untrusted-root.key"
chmod 644 "$D/p12.pass" "$D/identities.tsv"
rm -rf "$W"
