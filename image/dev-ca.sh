#!/bin/sh
# purpose: a development CA and a bundle-signing certificate for RAUC, made with the openssl CLI.
# Usage: image/dev-ca.sh DIR [NAME]
#   DIR/ca.key.pem DIR/ca.cert.pem        the CA (its certificate becomes the device keyring)
#   DIR/signing.key.pem DIR/signing.cert.pem   the key `rauc bundle` signs with
# Development only: the production key lives in an HSM (docs/appliance.md, "Signing keys").
set -eu

dir=${1:?usage: dev-ca.sh DIR [NAME]}
name=${2:-Tillbox development}
days_ca=${DEV_CA_DAYS:-1825}
days_signing=${DEV_SIGNING_DAYS:-730}

if [ -e "$dir/ca.key.pem" ]; then
    echo "dev-ca.sh: $dir already holds a CA; remove it to start over" >&2
    exit 1
fi
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

cat > "$dir/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
O = $name
CN = $name update CA
[v3_ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_signing]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning, emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key.pem"
openssl req -new -x509 -config "$dir/openssl.cnf" -extensions v3_ca -key "$dir/ca.key.pem" \
    -sha256 -days "$days_ca" -out "$dir/ca.cert.pem"

openssl ecparam -name prime256v1 -genkey -noout -out "$dir/signing.key.pem"
openssl req -new -config "$dir/openssl.cnf" -key "$dir/signing.key.pem" \
    -subj "/O=$name/CN=$name bundle signing" -out "$dir/signing.csr.pem"
openssl x509 -req -in "$dir/signing.csr.pem" -CA "$dir/ca.cert.pem" -CAkey "$dir/ca.key.pem" \
    -CAcreateserial -extfile "$dir/openssl.cnf" -extensions v3_signing -sha256 \
    -days "$days_signing" -out "$dir/signing.cert.pem"
rm -f "$dir/signing.csr.pem" "$dir/ca.cert.srl"
chmod 644 "$dir/ca.cert.pem" "$dir/signing.cert.pem"
echo "dev-ca.sh: CA $dir/ca.cert.pem, signing certificate $dir/signing.cert.pem"
