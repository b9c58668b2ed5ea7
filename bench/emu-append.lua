-- wrk script: WebHDFS APPENDs (ADLS one-step, server-chosen offset) of SIZE bytes, spread round-robin
-- over FILES files under /bench/. Usage: wrk ... -s bench/emu-append.lua URL -- SIZE FILES
local thread_no = 0
function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
end

function init(args)
  size = tonumber(args[1])
  files = tonumber(args[2])
  body = string.rep("x", size)
  n = tid
end

function request()
  n = n + 7
  local path = "/webhdfs/v1/bench/f" .. (n % files) .. "?op=APPEND&append=true&syncFlag=DATA"
  return wrk.format("POST", path, { ["Content-Type"] = "application/octet-stream" }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    errors = (errors or 0) + 1
  end
end
