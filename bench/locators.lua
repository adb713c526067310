-- wrk script: POST a locator, then DELETE it (an asset holds at most 5 locators), repeatedly.
-- Set by bench/emulator.py through environment variables: TOKEN, ASSET, POLICY.
local token = os.getenv("TOKEN")
local body = '{"AssetId":"' .. os.getenv("ASSET") .. '","AccessPolicyId":"' .. os.getenv("POLICY") .. '","Type":2}'
local pending = {}
local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json",
  ["x-ms-version"] = "2.19",
  ["DataServiceVersion"] = "3.0",
}
request = function()
  local id = table.remove(pending)
  if id then
    return wrk.format("DELETE", "/api/Locators('" .. id .. "')", headers)
  end
  return wrk.format("POST", "/api/Locators", headers, body)
end
response = function(status, hdrs, resp)
  if status == 201 then
    local id = string.match(resp, '"Id":"(nb:lid:UUID:[^"]+)"')
    if id then table.insert(pending, (string.gsub(id, ":", "%%3A"))) end
  elseif status ~= 204 then
    errors_seen = (errors_seen or 0) + 1
  end
end
