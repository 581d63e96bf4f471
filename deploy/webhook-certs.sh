#!/bin/sh
# Self-signed path for the kmcast webhook (when cert-manager is not installed): makes a CA and a
# serving certificate for kmcast-webhook.kmcast-system.svc with openssl, stores them as the Secret
# kmcast-webhook-tls and puts the CA into the MutatingWebhookConfiguration's caBundle.
# Run after `kubectl apply -k deploy/kustomize/base`; re-run before the certificate expires (DAYS).
set -eu
NS=${NS:-kmcast-system}
SVC=${SVC:-kmcast-webhook}
DAYS=${DAYS:-365}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$DAYS" \
  -subj "/CN=kmcast-webhook-ca" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=$SVC.$NS.svc" -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\n' "$SVC" "$NS" "$SVC" "$NS" > "$dir/ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days "$DAYS" -extfile "$dir/ext" -out "$dir/tls.crt" 2>/dev/null
kubectl -n "$NS" create secret tls kmcast-webhook-tls --cert="$dir/tls.crt" --key="$dir/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
ca=$(base64 < "$dir/ca.crt" | tr -d '\n')
kubectl patch mutatingwebhookconfiguration kmcast --type=json \
  -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$ca\"}]"
echo "webhook-certs: certificate for $SVC.$NS.svc installed, valid $DAYS days"
