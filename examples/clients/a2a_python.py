"""Send and stream A2A tasks through the gateway with the official A2A SDK
(a2a-sdk 1.x).

    GATEWAY_URL=https://localhost:8443 GATEWAY_CA=.run/certs/ca.crt \
    AGENT_API_KEY=gw-demo-admin-1 .venv/bin/python examples/clients/a2a_python.py

The agent card is served through the gateway; its interfaces point back at
the gateway, so the client never talks to the agent directly.
"""

import asyncio
import os
import ssl

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import get_message_text, new_text_message
from a2a.types import Role, SendMessageRequest, TaskState

URL = os.environ.get("GATEWAY_URL", "https://localhost:8443")
CA = os.environ.get("GATEWAY_CA", ".run/certs/ca.crt")
KEY = os.environ.get("AGENT_API_KEY", "gw-demo-admin-1")


async def main() -> None:
    tls = ssl.create_default_context(cafile=CA)  # the demo's CA; drop cafile for a public certificate
    async with httpx.AsyncClient(headers={"x-agent-api-key": KEY}, verify=tls, timeout=60) as http:
        card = await A2ACardResolver(http, URL).get_agent_card()
        print("agent:", card.name, "at", ", ".join(i.url for i in card.supported_interfaces))

        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
        async for event in client.send_message(SendMessageRequest(message=new_text_message("hello", role=Role.ROLE_USER))):
            task = event.task
            print("sent:", TaskState.Name(task.status.state), get_message_text(task.status.message))
        await client.close()

        client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
        request = SendMessageRequest(message=new_text_message("steps=3", role=Role.ROLE_USER))
        async for event in client.send_message(request):
            if event.WhichOneof("payload") == "status_update":
                print("streamed:", TaskState.Name(event.status_update.status.state))
        await client.close()


asyncio.run(main())
