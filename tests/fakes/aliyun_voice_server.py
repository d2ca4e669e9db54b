"""A local stand-in for Alibaba Cloud's voice API (dyvmsapi 2017-05-25), for the official SDK.

The SDK is pointed at it with `ALIYUN_VOICE_API_BASE_URL=http://127.0.0.1:<port>`. Like the SMS
fake (whose ACS3-HMAC-SHA256 check it shares) it refuses a request signed with another secret,
records `SingleCallByTts` and `IvrCall`, and answers with a CallId. `receipts` writes the
VoiceReport push Alibaba Cloud sends when the call has ended, for the calls it placed.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from tests.fakes.aliyun_server import FakeAliyun


class FakeAliyunVoice(FakeAliyun):
    """Serve the voice API on 127.0.0.1; queue answers with `answer_next` (an error code)."""

    def handle(self, method: str, path: str, headers: Any, body: bytes
               ) -> tuple[int, dict[str, Any]]:
        signed = self.record(method, path, headers, body)
        request_id = secrets.token_hex(8).upper()
        if not signed:
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "bad signature",
                         "RequestId": request_id}
        if self._answers:
            status, answer = self._answers.pop(0)
            if answer["Code"] != "OK":
                return status, answer
        return 200, {"Code": "OK", "Message": "OK", "RequestId": request_id,
                     "CallId": f"{secrets.randbelow(10**12)}^{secrets.randbelow(10**12)}"}

    def receipts(self, *calls: dict[str, str]) -> bytes:
        """The VoiceReport push for calls that ended: each dict gives `call_id` and may give
        `answered` ("1"), `dtmf`, `out_id` and `status_code`."""
        records = []
        for call in calls:
            answered = call.get("answered") == "1"
            records.append({
                "call_id": call["call_id"], "out_id": call.get("out_id", ""),
                "start_time": "2026-11-30 17:30:05" if answered else "",
                "end_time": "2026-11-30 17:30:41" if answered else "2026-11-30 17:30:30",
                "duration": "36" if answered else "0",
                "status_code": call.get("status_code", "200000" if answered else "200005"),
                "status_msg": "用户听完语音" if answered else "用户未接听",
                "dtmf": call.get("dtmf", ""), "toll_type": "LOCAL"})
        return json.dumps(records, ensure_ascii=False).encode()
