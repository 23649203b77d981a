import aioqueue


async def test_enqueue_and_get(q: aioqueue.Queue) -> None:
    out = await q.enqueue("send.email", {"to": "a@b.com"})
    assert out.deduped is False
    job = await q.get_job(out.id)
    assert job.payload == {"to": "a@b.com"}
    assert job.state is aioqueue.JobState.PENDING
