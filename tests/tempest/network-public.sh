# Sourced by network*.env: makes (once per cloud) the external network "public" with subnet
# 172.24.4.0/24 (gateway .1, pool .10-.200: .1 and .250-.254 stay free for a namespace that
# plays the outside world) with the admin token, and exports TEMPEST_PUBLIC_NETWORK_ID,
# TEMPEST_FLOATING_NETWORK_NAME and TS_PUBLIC_CIDR/TS_PUBLIC_GATEWAY.
# Needs TS_URL_IDENTITY, TS_URL_NETWORK and TEMPEST_ADMIN_PASSWORD (set by run-lists.sh).
_ts_tok=$(curl -si -H 'Content-Type: application/json' -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"admin\",\"domain\":{\"name\":\"Default\"},\"password\":\"$TEMPEST_ADMIN_PASSWORD\"}}},\"scope\":{\"project\":{\"name\":\"admin\",\"domain\":{\"name\":\"Default\"}}}}}" "$TS_URL_IDENTITY/v3/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p')
_ts_pub=$(curl -s -H "X-Auth-Token: $_ts_tok" "$TS_URL_NETWORK/v2.0/networks?name=public&router:external=True" |
  /usr/bin/python3 -c 'import json,sys; n=json.load(sys.stdin)["networks"]; print(n[0]["id"] if n else "")')
if [ -z "$_ts_pub" ]; then
  _ts_pub=$(curl -s -H "X-Auth-Token: $_ts_tok" -H 'Content-Type: application/json' \
    -d '{"network": {"name": "public", "router:external": true, "shared": false}}' \
    "$TS_URL_NETWORK/v2.0/networks" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["id"])')
  curl -s -o /dev/null -H "X-Auth-Token: $_ts_tok" -H 'Content-Type: application/json' \
    -d "{\"subnet\": {\"name\": \"public-subnet\", \"network_id\": \"$_ts_pub\", \"ip_version\": 4, \"cidr\": \"172.24.4.0/24\", \"gateway_ip\": \"172.24.4.1\", \"enable_dhcp\": false, \"allocation_pools\": [{\"start\": \"172.24.4.10\", \"end\": \"172.24.4.200\"}]}}" \
    "$TS_URL_NETWORK/v2.0/subnets"
fi
export TEMPEST_PUBLIC_NETWORK_ID=$_ts_pub TEMPEST_FLOATING_NETWORK_NAME=public
export TS_PUBLIC_CIDR=172.24.4.0/24 TS_PUBLIC_GATEWAY=172.24.4.1
unset _ts_tok _ts_pub
