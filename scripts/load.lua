-- wrk script for scripts/load.sh: every request carries one of the keys in
-- the file named by the script's first argument (one key per line), in
-- turn; threads start at different lines. The requests are formatted once,
-- in init, so that wrk spends no more time per request than with a fixed
-- header.
--
--   wrk ... -s scripts/load.lua http://127.0.0.1:8080/protected -- keys.txt

local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local requests = {}
local next = 1

function init(args)
  local file = assert(io.open(args[1], "r"))
  for key in file:lines() do
    if key ~= "" then
      requests[#requests + 1] = wrk.format(nil, nil, { ["X-API-Key"] = key })
    end
  end
  file:close()
  assert(#requests > 0, "no keys in " .. args[1])
  next = (id * 4999) % #requests + 1
end

function request()
  local r = requests[next]
  next = next % #requests + 1
  return r
end
